"""Stage 5, the graph: a NetworkX knowledge graph with per-document provenance, its exports and views.

Modules: ``provenance`` (the public provenance records and the aggregation rules, shared with the
store), ``knowledge_graph`` (the graph), ``export`` (the files an ingest writes, atomically),
``html`` (the interactive view), ``atomic`` (atomic file writes).
"""

from __future__ import annotations

from pipeline.graph.knowledge_graph import KnowledgeGraph, ProvenanceUnavailableError
from pipeline.graph.provenance import (
    PROVENANCE_FORMAT,
    PROVENANCE_KEY,
    DocumentContribution,
    Evidence,
    NodeContribution,
    Provenance,
)

__all__ = [
    "PROVENANCE_FORMAT",
    "PROVENANCE_KEY",
    "DocumentContribution",
    "Evidence",
    "KnowledgeGraph",
    "NodeContribution",
    "Provenance",
    "ProvenanceUnavailableError",
]
