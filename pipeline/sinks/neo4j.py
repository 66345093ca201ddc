"""Neo4j: many documents per transaction, idempotent, exact replacement (``pipeline.store.upsert_batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import neo4j
from neo4j import exceptions as neo4j_exc

from pipeline import store
from pipeline.errors import Neo4jConnectionError
from pipeline.store.settings import Neo4jSettings
from pipeline.types import Document, DocumentAnalysis, FailedDocument, WriteResult

#: Errors that mean the server, not the document, is the problem.
_CONNECTION_ERRORS = (neo4j_exc.ServiceUnavailable, neo4j_exc.SessionExpired, ConnectionError, OSError)


class Neo4jSink:
    """Upserts every analysis into Neo4j; asks the database (not any file) which documents it holds."""

    name = "neo4j"

    def __init__(self, settings: Neo4jSettings, batch_size: int = store.DEFAULT_BATCH_SIZE) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self._driver: neo4j.Driver | None = None

    @property
    def driver(self) -> neo4j.Driver:
        if self._driver is None:
            raise RuntimeError("Neo4jSink.open() was not called")
        return self._driver

    def open(self) -> None:
        if self._driver is None:
            self._driver = store.connect(self.settings)

    def held(self, documents: Sequence[Document], settings: dict[str, Any] | None = None) -> set[str]:
        try:
            return store.held_documents(
                self.driver, self.settings.database, [(d.id, d.content_hash) for d in documents], settings
            )
        except _CONNECTION_ERRORS as exc:
            raise self._lost(exc) from None

    def write(
        self, analyses: Sequence[DocumentAnalysis], relation_labels: dict[str, str]
    ) -> list[WriteResult | FailedDocument]:
        try:
            results = store.upsert_batch(
                self.driver, self.settings.database, list(analyses), relation_labels, self.batch_size
            )
        except _CONNECTION_ERRORS as exc:
            raise self._lost(exc) from None
        # a document the store refuses (whitelists, contract) is reported; the others are written
        return [
            FailedDocument.of(a.document, self.name, r) if isinstance(r, ValueError) else r
            for a, r in zip(analyses, results, strict=True)
        ]

    def close(self) -> dict[str, str]:
        self.abort()
        return {"neo4j": f"{self.settings.uri} (database {self.settings.database!r})"}

    def abort(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    def _lost(self, exc: BaseException) -> Neo4jConnectionError:
        return Neo4jConnectionError(
            f"lost the connection to Neo4j at {self.settings.uri}: {type(exc).__name__}: {exc}; "
            "documents written so far are committed, rerun to write the rest"
        )
