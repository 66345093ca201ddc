"""The graph files: GraphML with node-link JSON beside it (the JSON keeps provenance) and the HTML view.

Concurrent runs writing to one ``--out`` take turns: the sink holds an exclusive lock on
``<json>.lock`` from ``open`` (before it reads the existing graph) to ``close`` (after it wrote the new
one), so the second run merges into the first run's result instead of overwriting it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pipeline.errors import QkgraphError
from pipeline.graph import KnowledgeGraph
from pipeline.graph.export import json_path_for, write_outputs
from pipeline.graph.html import Layer
from pipeline.types import Document, DocumentAnalysis, FailedDocument, WriteResult

log = logging.getLogger("qkgraph.sinks.files")


class GraphFileError(QkgraphError):
    """The file at --out exists but is not a graph qkgraph wrote (cut short, or another program's)."""


class FileSink:
    """Merges analyses into the graph at ``out`` (its node-link JSON) and writes the files on close.

    Args:
        out: GraphML path (node-link JSON beside it) or a ``.json`` path (JSON only); None: no graph files.
        html: also write the interactive HTML view here.
        html_layer: the edges the HTML view draws: "all" (relations and facts), "relations" or "facts".
        fresh: start an empty graph instead of updating the one at ``out``.
    """

    name = "files"

    def __init__(
        self,
        out: Path | None,
        html: Path | None = None,
        fresh: bool = False,
        title: str = "qkgraph",
        html_layer: Layer = "all",
    ) -> None:
        self.out = out
        self.html = html
        self.html_layer: Layer = html_layer
        self.fresh = fresh
        self.title = title
        self.graph = KnowledgeGraph()
        self.loaded_documents = 0
        self._lock: IO[str] | None = None

    @property
    def json_path(self) -> Path | None:
        return json_path_for(self.out) if self.out is not None else None

    def open(self) -> None:
        """Lock ``--out`` and load the graph there; a second call does nothing."""
        path = self.json_path
        if path is None or self._lock is not None:
            return
        self._acquire(path)
        if path.exists() and not self.fresh:
            try:
                self.graph = KnowledgeGraph.from_node_link(path)
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                self._release()
                raise GraphFileError(
                    f"{path} is not a graph qkgraph can update ({type(exc).__name__}: {str(exc)[:200]}); "
                    "it was left as it is: move it away, or pass --fresh to replace it with a new graph"
                ) from None
            self.loaded_documents = len(self.graph.documents)

    def _acquire(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "a+", encoding="utf-8")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another ingest is writing %s; waiting for it to finish", path)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def held(self, documents: Sequence[Document], settings: dict[str, Any] | None = None) -> set[str]:
        return {d.id for d in documents if self.graph.holds(d.id, d.content_hash, settings)}

    def write(
        self, analyses: Sequence[DocumentAnalysis], relation_labels: dict[str, str]
    ) -> list[WriteResult | FailedDocument]:
        known = self.graph.relation_labels
        # Relabelling walks every edge: only when these labels change something (the first batch).
        if any(known.get(k) != v for k, v in relation_labels.items()):
            self.graph.set_relation_labels(relation_labels)
        return [self.graph.add_analysis(a) for a in analyses]

    def close(self) -> dict[str, str]:
        try:
            return write_outputs(self.graph, self.out, self.html, title=self.title, html_layer=self.html_layer)
        finally:
            self._release()

    def abort(self) -> None:
        """Nothing was written yet (files are only written, atomically, by close()): just unlock."""
        self._release()
