"""Stage 5, the graph: a NetworkX knowledge graph with per-document provenance, its exports and views."""

from __future__ import annotations

from pipeline.graph.knowledge_graph import PROVENANCE_FORMAT, KnowledgeGraph, ProvenanceUnavailableError

__all__ = ["PROVENANCE_FORMAT", "KnowledgeGraph", "ProvenanceUnavailableError"]
