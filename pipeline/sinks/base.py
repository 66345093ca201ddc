"""The contract between ``run_ingest`` and a place the graph is written to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pipeline.types import Document, DocumentAnalysis, FailedDocument, WriteResult


@runtime_checkable
class Sink(Protocol):
    """A destination of analyses. ``run_ingest`` calls open, then held/write any number of times, then close.

    * ``open()`` prepares (connects, loads the existing graph); a bad configuration raises
      ``QkgraphError`` here, before any extraction work.
    * ``held(documents, settings=None)`` returns the ids of those documents the sink already holds
      with the same content hash and, given ``settings`` (what the analyser's analyses would record:
      ``IngestSettings.analysis_settings()``), analysed with the same: a document every sink holds is
      not analysed again. The sink answers from its own state (the store asks the database, files
      read their own JSON).
    * ``write(analyses, relation_labels)`` stores the analyses in order and returns one result per
      analysis: "added" / "unchanged" / "replaced", or a ``FailedDocument`` for one it refuses.
      An error that is not about one document (the store went away) raises.
    * ``close()`` finishes (commits files atomically) and returns what was written, kind -> path/URI.
    * ``abort()`` releases resources after an error without committing anything partial.
    """

    name: str

    def open(self) -> None: ...

    def held(self, documents: Sequence[Document], settings: dict[str, Any] | None = None) -> set[str]: ...

    def write(
        self, analyses: Sequence[DocumentAnalysis], relation_labels: dict[str, str]
    ) -> list[WriteResult | FailedDocument]: ...

    def close(self) -> dict[str, str]: ...

    def abort(self) -> None: ...
