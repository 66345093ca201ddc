"""Writing to Neo4j: one document per managed transaction, idempotent, with exact aggregates.

Model (see docs/neo4j.md for the reasons)::

    (:Document {id, content_hash, source, ingested_at, seq, settings})
    (:Sentence {doc_id, index, text})-[:PART_OF]->(:Document)          cited sentences only
    (:Span {key, text, label, kind, mentions, documents})              + :Person / :Org / ... for entities
    (:Span)-[:MENTIONED_IN {count, position, starts, ends, sentences, text_values, text_counts,
                            label_values, label_counts, kind_values, kind_counts}]->(:Document)
    (:Span)-[:EVIDENCE {type, doc_id, count, score_max, score_sum, score_mean, scores, sentences,
                        source_starts, source_ends, target_starts, target_ends}]->(:Span)   per document
    (:Span)-[:RELATES {type, label, count, score_max, score_mean, documents}]->(:Span)      aggregate
    (:RelationType {id, label})                                          human labels of relation ids

Per-document rows (MENTIONED_IN, EVIDENCE, Sentence) are the source of truth; Span properties and
RELATES edges are aggregates recomputed from them for every node and triple a document touches,
with ``pipeline.graph.provenance``'s rules (see docs/neo4j.md for the model and the reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import neo4j

from pipeline.graph import KnowledgeGraph, ProvenanceUnavailableError
from pipeline.store import queries
from pipeline.store.connection import session
from pipeline.store.rows import (
    DocumentRows,
    evidence_rows,
    mention_rows,
    relates_rows,
    rows_from_analysis,
    rows_from_contribution,
    settings_json,
    span_rows,
)
from pipeline.store.schema import ALL_ENTITY_NODE_LABELS, ENTITY_LABELS, check_relation_labels, ensure_schema_once
from pipeline.types import DocumentAnalysis

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "BatchCallback",
    "UpsertResult",
    "delete_document",
    "set_relation_labels",
    "upsert_analyses",
    "upsert_document",
    "upsert_graph",
]

UpsertResult = Literal["added", "unchanged", "replaced"]

#: Called after every UNWIND batch with the statement's name (a ``pipeline.store.queries`` constant
#: name, e.g. "EVIDENCE") and the batch's row count, inside the document's transaction. Use it for
#: progress; an exception it raises aborts the transaction (nothing of the document is written) and
#: propagates unless the driver deems it transient (a ``neo4j.exceptions`` retryable error).
BatchCallback = Callable[[str, int], None]

#: Rows per UNWIND statement. Chosen with bench/neo4j_upsert.py (see docs/neo4j.md for the sweep).
DEFAULT_BATCH_SIZE = 1000


class _Batcher:
    """Runs one statement over rows in UNWIND batches inside a managed transaction."""

    def __init__(self, tx: neo4j.ManagedTransaction, batch_size: int, on_batch: BatchCallback | None) -> None:
        self.tx = tx
        self.batch_size = batch_size
        self.on_batch = on_batch

    def run(self, name: str, rows: Sequence[Any], **params: Any) -> list[dict[str, Any]]:
        """Run ``queries.<name>`` over ``rows``; the records of every batch, in order."""
        query = getattr(queries, name)
        out: list[dict[str, Any]] = []
        for start in range(0, len(rows), self.batch_size):
            batch = list(rows[start : start + self.batch_size])
            out.extend(record.data() for record in self.tx.run(query, params, rows=batch))
            if self.on_batch is not None:
                self.on_batch(name, len(batch))
        return out


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _apply_labels(tx: neo4j.ManagedTransaction, labels: dict[str, str], batcher: _Batcher) -> None:
    """Write relation labels that differ from the stored ones (so an unchanged rerun writes nothing)."""
    if not labels:
        return
    stored = {r["id"]: r["label"] for r in tx.run(queries.LABELS_READ, ids=sorted(labels)).data()}
    changed = [{"id": k, "label": v} for k, v in sorted(labels.items()) if stored.get(k) != v]
    if changed:
        batcher.run("LABELS_WRITE", changed)
        tx.run(queries.RELABEL, ids=[c["id"] for c in changed], labels={c["id"]: c["label"] for c in changed}).consume()


def _remove_contribution(tx: neo4j.ManagedTransaction, doc_id: str) -> tuple[set[str], set[tuple[str, str, str]]]:
    """Delete a document's mentions, evidence and sentences; return the span keys and triples it touched."""
    keys = {r["key"] for r in tx.run(queries.OLD_MENTIONS, id=doc_id)}
    pairs = {(r["s"], r["o"], r["t"]) for r in tx.run(queries.OLD_EVIDENCE, id=doc_id)}
    tx.run(queries.OLD_SENTENCES, id=doc_id).consume()
    return keys, pairs


def _recompute(
    batcher: _Batcher,
    keys: Iterable[str],
    pairs: Iterable[tuple[str, str, str]],
    orphan_candidates: Iterable[str] | None = None,
) -> None:
    """Recompute RELATES for the triples and Span properties for the keys; delete what lost all support.

    orphan_candidates: the keys that may have lost their last mention (default: all of ``keys``).
    """
    pair_rows = [{"s": s, "o": o, "t": t} for s, o, t in sorted(pairs)]
    updates = relates_rows(batcher.run("PAIRS_READ", pair_rows))
    gone = [p for p in pair_rows if (p["s"], p["o"], p["t"]) not in updates]
    if gone:
        batcher.run("RELATES_DELETE", gone)
    if updates:
        batcher.run("RELATES_WRITE", list(updates.values()))

    key_list = sorted(set(keys))
    candidates = key_list if orphan_candidates is None else sorted(set(orphan_candidates))
    if candidates:
        batcher.run("NODES_DELETE_ORPHANS", candidates)
    batcher.run("NODES_RECOMPUTE", key_list, entity_labels=ALL_ENTITY_NODE_LABELS, label_map=ENTITY_LABELS)


def _upsert_tx(
    tx: neo4j.ManagedTransaction,
    rows: DocumentRows,
    labels: dict[str, str],
    batch_size: int,
    on_batch: BatchCallback | None,
) -> UpsertResult:
    """One document, one transaction. Idempotent: the driver may call it again after a transient error."""
    batcher = _Batcher(tx, batch_size, on_batch)
    doc_id = rows.doc_id
    state = tx.run(queries.DOC_STATE, id=doc_id).single(strict=True)
    old_hash = state["content_hash"]
    _apply_labels(tx, labels, batcher)
    if old_hash == rows.contribution.content_hash:
        return "unchanged"
    old_keys: set[str] = set()
    old_pairs: set[tuple[str, str, str]] = set()
    if old_hash is not None:
        old_keys, old_pairs = _remove_contribution(tx, doc_id)
    seq = int(state["top"][0]) + 1 if state["top"] else 0  # a replaced document counts as ingested anew

    # Nodes first, then the relationships between them, then the aggregates.
    tx.run(
        queries.DOC_WRITE,
        id=doc_id,
        content_hash=rows.contribution.content_hash,
        source=rows.source,
        settings=settings_json(rows),
        seq=seq,
    ).consume()
    matched = {r["key"] for r in batcher.run("SPANS", span_rows(rows, seq), id=doc_id)}  # spans that existed
    sentences = [{"index": i, "text": t} for i, t in sorted(rows.contribution.sentences.items())]
    batcher.run("SENTENCES", sentences, id=doc_id)
    batcher.run("MENTIONS", mention_rows(rows), id=doc_id)
    shared = {(r["s"], r["o"], r["t"]) for r in batcher.run("EVIDENCE", evidence_rows(rows), id=doc_id)}
    # Recompute what other documents share or what the old version touched; the rest is final already
    # (a triple only this document supports got its RELATES in EVIDENCE, a span it alone mentions
    # its properties in SPANS).
    _recompute(
        batcher,
        old_keys | matched,
        (old_pairs - set(rows.contribution.edges)) | shared,
        orphan_candidates=old_keys - set(rows.contribution.nodes),
    )
    return "added" if old_hash is None else "replaced"


def _delete_tx(tx: neo4j.ManagedTransaction, doc_id: str, batch_size: int, on_batch: BatchCallback | None) -> bool:
    if tx.run(queries.DOC_HASH, id=doc_id).single(strict=True)["content_hash"] is None:
        return False
    keys, pairs = _remove_contribution(tx, doc_id)
    tx.run(queries.DOC_DELETE, id=doc_id).consume()
    _recompute(_Batcher(tx, batch_size, on_batch), keys, pairs)
    return True


# ── public API ───────────────────────────────────────────────────────────────────────────────────


def upsert_document(
    driver: neo4j.Driver,
    database: str,
    analysis: DocumentAnalysis,
    relation_labels: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    on_batch: BatchCallback | None = None,
) -> UpsertResult:
    """Write one document's analysis in ONE managed transaction (all of it, or nothing).

    Returns "unchanged" when a document with this id and content hash is stored (nothing is written,
    except relation labels that differ from the stored ones), "replaced" when it is stored with another
    hash (its old mentions, evidence and sentences are removed, aggregates recomputed and spans and
    edges nobody supports any more deleted), else "added". ``on_batch``: see ``BatchCallback``.

    Raises:
        ValueError: a relation type, entity label or span kind outside the whitelists, or an analysis
            that breaks its contract (index out of range, non-finite score). Nothing is written.
    """
    _check_batch_size(batch_size)
    labels = check_relation_labels(relation_labels)
    rows = rows_from_analysis(analysis)
    ensure_schema_once(driver, database)
    with session(driver, database) as s:
        return s.execute_write(_upsert_tx, rows, labels, batch_size, on_batch)


def upsert_analyses(
    driver: neo4j.Driver,
    database: str,
    analyses: Iterable[DocumentAnalysis],
    relation_labels: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_result: Callable[[DocumentAnalysis, UpsertResult], None] | None = None,
    *,
    on_batch: BatchCallback | None = None,
) -> dict[str, int]:
    """``upsert_document`` for each analysis (one transaction per document), streaming.

    Each document is validated just before it is written, so a bad one raises ValueError after the
    documents before it were committed (each document is atomic, the batch is not). Returns
    {"added": n, "unchanged": n, "replaced": n}.
    """
    _check_batch_size(batch_size)
    labels = check_relation_labels(relation_labels)
    ensure_schema_once(driver, database)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    with session(driver, database) as s:
        for analysis in analyses:
            result = s.execute_write(_upsert_tx, rows_from_analysis(analysis), labels, batch_size, on_batch)
            labels = {}  # written (or found equal) with the first document
            counts[result] += 1
            if on_result is not None:
                on_result(analysis, result)
    if labels:  # no document at all: still store the labels
        set_relation_labels(driver, database, labels)
    return counts


def set_relation_labels(driver: neo4j.Driver, database: str, relation_labels: dict[str, str]) -> None:
    """Store human labels for relation ids and relabel their RELATES edges (only changed ones are written)."""
    labels = check_relation_labels(relation_labels)
    ensure_schema_once(driver, database)

    def work(tx: neo4j.ManagedTransaction) -> None:
        _apply_labels(tx, labels, _Batcher(tx, DEFAULT_BATCH_SIZE, None))

    with session(driver, database) as s:
        s.execute_write(work)


def delete_document(
    driver: neo4j.Driver,
    database: str,
    doc_id: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    on_batch: BatchCallback | None = None,
) -> bool:
    """Remove a document and everything only it supported (one transaction). False if it was not stored."""
    _check_batch_size(batch_size)
    ensure_schema_once(driver, database)
    with session(driver, database) as s:
        return s.execute_write(_delete_tx, doc_id, batch_size, on_batch)


def upsert_graph(
    driver: neo4j.Driver,
    database: str,
    kg: KnowledgeGraph,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    on_batch: BatchCallback | None = None,
) -> dict[str, int]:
    """Write a ``KnowledgeGraph``: each of its documents, in its ingest order, as by ``upsert_document``.

    The graph must carry per-document contributions (built by ingest, or loaded from node-link JSON or
    GraphML written with provenance). KnowledgeGraph does not keep mention offsets, so MENTIONED_IN
    ``starts``/``ends``/``sentences`` are empty lists for documents written this way, and ``source`` is "".

    Raises:
        ProvenanceUnavailableError: the graph has no per-document contributions.
        ValueError: a label or type outside the whitelists (checked for every document before any write).
    """
    _check_batch_size(batch_size)
    provenance = kg.provenance()
    if provenance is None:
        raise ProvenanceUnavailableError(
            "this KnowledgeGraph has no per-document contributions (loaded from an export without "
            "provenance), so it cannot be written document by document"
        )
    labels = check_relation_labels(kg.relation_labels)
    rows = [rows_from_contribution(c) for c in provenance.contributions]  # validate all first
    ensure_schema_once(driver, database)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    with session(driver, database) as s:
        for r in rows:
            counts[s.execute_write(_upsert_tx, r, labels, batch_size, on_batch)] += 1
            labels = {}
    if labels:
        set_relation_labels(driver, database, labels)
    return counts
