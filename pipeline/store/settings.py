"""Connection settings for a Neo4j server, from arguments or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Neo4jSettings:
    """Where and how to reach Neo4j.

    ``user``/``password`` both None means no auth (the throwaway dev server). The password is kept out
    of ``repr`` so it never reaches a log line.
    """

    uri: str
    user: str | None = None
    password: str | None = None
    database: str = "neo4j"

    def __repr__(self) -> str:
        auth = "no auth" if self.user is None else f"user={self.user!r}, password=***"
        return f"Neo4jSettings(uri={self.uri!r}, {auth}, database={self.database!r})"

    @classmethod
    def from_env(
        cls,
        uri: str | None = None,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
    ) -> Neo4jSettings | None:
        """Arguments first, then NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD / NEO4J_DATABASE.

        Returns None when no URI is given anywhere: the caller then writes files instead.
        """
        uri = uri or os.environ.get("NEO4J_URI")
        if not uri:
            return None
        user = user if user is not None else os.environ.get("NEO4J_USER") or os.environ.get("NEO4J_USERNAME")
        password = password if password is not None else os.environ.get("NEO4J_PASSWORD")
        database = database or os.environ.get("NEO4J_DATABASE") or "neo4j"
        if password is not None and user is None:
            user = "neo4j"
        return cls(uri=uri, user=user, password=password, database=database)
