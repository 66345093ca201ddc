"""Everything that talks to Neo4j. The only Python module with Cypher in it (the rest is in queries/)."""

from __future__ import annotations

from typing import Any

import neo4j
from neo4j import exceptions as neo4j_exc

from .errors import Neo4jConnectionError
from .settings import Neo4jSettings


def connect(settings: Neo4jSettings, timeout_s: float = 10.0) -> neo4j.Driver:
    """Open a driver and prove that the server, the credentials and the database all work.

    Raises Neo4jConnectionError with one line saying which of the three failed; no driver stack trace
    reaches the user. Call it before any work so a bad setting costs nothing.
    """
    auth = None if settings.user is None else (settings.user, settings.password or "")
    try:
        driver = neo4j.GraphDatabase.driver(
            settings.uri, auth=auth, connection_timeout=timeout_s, max_transaction_retry_time=30.0
        )
    except (ValueError, neo4j_exc.ConfigurationError) as exc:
        raise Neo4jConnectionError(f"invalid Neo4j URI {settings.uri!r}: {exc}") from None
    try:
        driver.verify_connectivity()
        # verify_connectivity does not open the database; a trivial read does, and names a missing one.
        driver.execute_query("RETURN 1", database_=settings.database, routing_=neo4j.RoutingControl.READ)
    except neo4j_exc.AuthError:
        driver.close()
        raise Neo4jConnectionError(
            f"Neo4j at {settings.uri} rejected the credentials for user {settings.user!r} "
            "(check NEO4J_USER / NEO4J_PASSWORD)"
        ) from None
    except neo4j_exc.ServiceUnavailable:
        driver.close()
        raise Neo4jConnectionError(
            f"cannot reach Neo4j at {settings.uri} (is the server running and the address right?)"
        ) from None
    except neo4j_exc.ClientError as exc:
        driver.close()
        if exc.code and "DatabaseNotFound" in exc.code:
            raise Neo4jConnectionError(
                f"Neo4j at {settings.uri} has no database {settings.database!r} (check NEO4J_DATABASE)"
            ) from None
        raise Neo4jConnectionError(f"Neo4j at {settings.uri} refused the connection check: {exc.message}") from None
    except neo4j_exc.DriverError as exc:
        driver.close()
        raise Neo4jConnectionError(f"cannot use Neo4j at {settings.uri}: {exc}") from None
    except OSError as exc:
        driver.close()
        raise Neo4jConnectionError(f"cannot reach Neo4j at {settings.uri}: {exc}") from None
    return driver


def clear_database(driver: neo4j.Driver, database: str) -> None:
    """Delete every node and relationship (batched, so large graphs do not need one huge transaction)."""
    # CALL ... IN TRANSACTIONS needs an auto-commit transaction, hence session.run.
    with driver.session(database=database) as session:
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


def server_info(driver: neo4j.Driver, database: str) -> dict[str, Any]:
    """Name, version and edition of the server behind the driver."""
    records, _, _ = driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition",
        database_=database,
    )
    return dict(records[0])
