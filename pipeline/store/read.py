"""Reading the database back: the per-document rows as provenance, and as a ``KnowledgeGraph``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import neo4j

from pipeline.graph import KnowledgeGraph
from pipeline.graph.provenance import (
    DocumentContribution,
    EdgeId,
    Evidence,
    FactEvidence,
    FactId,
    NodeContribution,
    Provenance,
    canonical_json,
)
from pipeline.store import queries
from pipeline.store.connection import read_rows
from pipeline.store.rows import fact_evidence_from_record

__all__ = ["load_provenance", "read_graph", "read_provenance", "read_relation_labels"]


def load_provenance(driver: neo4j.Driver, database: str) -> Provenance:
    """The stored per-document rows as ``Provenance`` (contributions in ingest order: seq, then id)."""
    docs = sorted(read_rows(driver, database, queries.READ_DOCS), key=lambda d: (d["seq"], d["id"]))
    nodes: dict[str, dict[str, NodeContribution]] = {}
    for m in sorted(
        read_rows(driver, database, queries.READ_MENTIONS), key=lambda m: (m["doc"], m["position"], m["key"])
    ):
        nodes.setdefault(m["doc"], {})[m["key"]] = NodeContribution(
            mentions=int(m["count"]),
            texts=dict(zip(m["text_values"], m["text_counts"])),
            labels=dict(zip(m["label_values"], m["label_counts"])),
            kinds=dict(zip(m["kind_values"], m["kind_counts"])),
        )
    edges: dict[str, dict[EdgeId, list[Evidence]]] = {}
    for e in read_rows(driver, database, queries.READ_EVIDENCE):
        units = e["units"] or [""] * len(e["scores"])  # none on evidence stored before units existed
        items = edges.setdefault(e["doc"], {})[(e["s"], e["o"], e["t"])] = [
            Evidence(
                document=e["doc"],
                sentence_index=int(e["sentences"][i]),
                source_start=int(e["source_starts"][i]),
                source_end=int(e["source_ends"][i]),
                target_start=int(e["target_starts"][i]),
                target_end=int(e["target_ends"][i]),
                score=float(score),
                unit=str(units[i]),
            )
            for i, score in enumerate(e["scores"])
        ]
        items.sort(key=Evidence.sort_key)  # written best first already; the graph relies on it
    facts: dict[str, dict[FactId, list[FactEvidence]]] = {}
    for f in read_rows(driver, database, queries.READ_FACT_EVIDENCE):
        facts.setdefault(f["doc"], {})[(f["s"], f["o"], f["p"])] = fact_evidence_from_record(f)
    sentences: dict[str, dict[int, str]] = {}
    for s in read_rows(driver, database, queries.READ_SENTENCES):
        sentences.setdefault(s["doc"], {})[int(s["index"])] = s["text"]
    return Provenance(
        [
            DocumentContribution(
                document=d["id"],
                content_hash=d["content_hash"],
                settings=json.loads(d["settings"] or "{}"),
                nodes=nodes.get(d["id"], {}),
                edges=dict(sorted(edges.get(d["id"], {}).items())),
                sentences=dict(sorted(sentences.get(d["id"], {}).items())),
                seq=seq,
                facts=dict(sorted(facts.get(d["id"], {}).items())),
            )
            for seq, d in enumerate(docs)
        ]
    )


def read_provenance(driver: neo4j.Driver, database: str) -> dict[str, Any]:
    """The stored per-document data in ``pipeline.graph``'s provenance JSON format (``Provenance.to_json``)."""
    return load_provenance(driver, database).to_json()


def document_hashes(driver: neo4j.Driver, database: str, ids: Sequence[str]) -> dict[str, str]:
    """Content hash of each of these documents that the store holds (absent ids are left out).

    This is how a rerun knows what Neo4j holds: the store is asked, not any file beside it.
    """
    if not ids:
        return {}
    rows = read_rows(driver, database, queries.DOC_VERSIONS, ids=list(ids))
    return {r["id"]: r["content_hash"] for r in rows}


def held_documents(
    driver: neo4j.Driver, database: str, documents: Sequence[tuple[str, str]], settings: dict[str, Any] | None = None
) -> set[str]:
    """Ids of these (id, content hash) documents that the store holds in this version: the same
    content hash and, given ``settings`` (``DocumentAnalysis.settings``), the same stored settings,
    which is when ``upsert_batch`` would call them "unchanged"."""
    if not documents:
        return set()
    rows = read_rows(driver, database, queries.DOC_VERSIONS, ids=[i for i, _ in documents])
    stored = {r["id"]: (r["content_hash"], r["settings"]) for r in rows}
    wanted = None if settings is None else canonical_json(settings)
    return {i for i, h in documents if i in stored and stored[i][0] == h and (wanted is None or stored[i][1] == wanted)}


def read_relation_labels(driver: neo4j.Driver, database: str) -> dict[str, str]:
    """{relation: human label} of every stored RelationType that has a label."""
    rows = read_rows(driver, database, queries.READ_RELATION_TYPES)
    return {r["id"]: r["label"] for r in rows if r["label"] is not None}


def read_graph(driver: neo4j.Driver, database: str, max_evidence: int = 5) -> KnowledgeGraph:
    """Read the database back into a ``KnowledgeGraph`` (same node/edge attributes, still updatable).

    The graph is rebuilt from the per-document rows with KnowledgeGraph's own aggregation, so it is
    exactly the graph that ingesting the same documents in the same order would give (graph
    ``settings``: those of the document ingested last).
    """
    return KnowledgeGraph.from_provenance(
        load_provenance(driver, database),
        relation_labels=read_relation_labels(driver, database),
        max_evidence=max_evidence,
    )
