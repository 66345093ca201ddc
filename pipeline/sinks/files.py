"""The graph files: GraphML with node-link JSON beside it (the JSON keeps provenance) and the HTML view."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.graph import KnowledgeGraph
from pipeline.graph.export import json_path_for, write_outputs
from pipeline.types import Document, DocumentAnalysis, FailedDocument, WriteResult


class FileSink:
    """Merges analyses into the graph at ``out`` (its node-link JSON) and writes the files on close.

    Args:
        out: GraphML path (node-link JSON beside it) or a ``.json`` path (JSON only); None: no graph files.
        html: also write the interactive HTML view here.
        fresh: start an empty graph instead of updating the one at ``out``.
    """

    name = "files"

    def __init__(self, out: Path | None, html: Path | None = None, fresh: bool = False, title: str = "qkgraph") -> None:
        self.out = out
        self.html = html
        self.fresh = fresh
        self.title = title
        self.graph = KnowledgeGraph()
        self.loaded_documents = 0

    @property
    def json_path(self) -> Path | None:
        return json_path_for(self.out) if self.out is not None else None

    def open(self) -> None:
        path = self.json_path
        if path is not None and path.exists() and not self.fresh:
            self.graph = KnowledgeGraph.from_node_link(path)
            self.loaded_documents = len(self.graph.documents)

    def held(self, documents: Sequence[Document]) -> set[str]:
        known = self.graph.documents
        return {d.id for d in documents if known.get(d.id) == d.content_hash}

    def write(
        self, analyses: Sequence[DocumentAnalysis], relation_labels: dict[str, str]
    ) -> list[WriteResult | FailedDocument]:
        if relation_labels:
            self.graph.set_relation_labels({**self.graph.relation_labels, **relation_labels})
        return [self.graph.add_analysis(a) for a in analyses]

    def close(self) -> dict[str, str]:
        return write_outputs(self.graph, self.out, self.html, title=self.title)

    def abort(self) -> None:
        """Nothing was written yet: files are only written, atomically, by close()."""
