"""Writing to Neo4j: many documents per managed transaction, idempotent, with exact aggregates.

Model (see docs/neo4j.md for the reasons)::

    (:Document {id, content_hash, source, ingested_at, seq, settings})
    (:Sentence {doc_id, index, text})-[:PART_OF]->(:Document)          cited sentences only
    (:Span {key, text, label, kind, mentions, documents})    + :Person / :Org / ... for entities, :Pronoun
    (:Span)-[:MENTIONED_IN {count, position, starts, ends, sentences, text_values, text_counts,
                            label_values, label_counts, kind_values, kind_counts}]->(:Document)
    (:Span)-[:EVIDENCE {type, doc_id, count, score_max, score_sum, score_mean, scores, sentences,
                        source_starts, source_ends, target_starts, target_ends, unit, units}]->(:Span)
                                                                         per document
    (:Span)-[:NSUBJ|OBJ|NMOD_POSS|... {type, label, unit, count, score_max, score_mean, documents}]->(:Span)
                                                                         aggregate of a typed relation
    (:Span)-[:RELATES {type, label, unit, count, score_max, score_mean, documents}]->(:Span)
                                                                         aggregate of a subspace id
    (:Span)-[:FACT_EVIDENCE {predicate, doc_id, count, probability_max, probability_mean, probabilities,
                             sentences, subject_starts, subject_ends, object_starts, object_ends,
                             predicate_starts, predicate_ends, kinds, arc_items, arc_relations,
                             arc_units, arc_probabilities, arc_head_starts, arc_head_ends,
                             arc_dependent_starts, arc_dependent_ends, arc_heads,
                             arc_dependents}]->(:Span)                  per document
    (:Span)-[:FACT {predicate, fact_kind, units, count, probability_max, probability_mean,
                    documents}]->(:Span)                                 aggregate of a fact
    (:RelationType {id, label})                                          human labels of relations

Per-document rows (MENTIONED_IN, EVIDENCE, FACT_EVIDENCE, Sentence) are the source of truth; Span
properties and the aggregate edges (relations and FACT) are recomputed from them for every node,
triple and fact a document touches, with
``pipeline.graph.provenance``'s rules (see docs/neo4j.md for the model and the reasons).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any, Literal, TypeVar

import neo4j

from pipeline.errors import StoreIntegrityError
from pipeline.gc_pause import paused_cyclic_gc
from pipeline.graph import KnowledgeGraph, ProvenanceUnavailableError
from pipeline.graph.provenance import is_typed_relation, relation_label
from pipeline.store import queries
from pipeline.store.connection import session
from pipeline.store.rows import (
    DocumentRows,
    evidence_rows,
    fact_evidence_rows,
    fact_pair_rows,
    facts_new_rows,
    facts_rows,
    mention_rows,
    pair_rows,
    relates_new_rows,
    relates_rows,
    rows_from_analysis,
    rows_from_contribution,
    settings_json,
    span_rows,
)
from pipeline.store.schema import (
    ALL_SPAN_NODE_LABELS,
    ENTITY_LABELS,
    PRONOUN_LABEL,
    check_relation_labels,
    ensure_schema_once,
)
from pipeline.types import DocumentAnalysis

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_DOCUMENTS",
    "DEFAULT_MAX_ROWS",
    "BatchCallback",
    "UpsertResult",
    "delete_document",
    "set_relation_labels",
    "upsert_analyses",
    "upsert_batch",
    "upsert_document",
    "upsert_graph",
]

log = logging.getLogger(__name__)

UpsertResult = Literal["added", "unchanged", "replaced"]

#: A transaction the store's statements run in: a managed one (``execute_write``) or the explicit one
#: of ``_execute_write``.
Tx = neo4j.ManagedTransaction | neo4j.Transaction

#: Called after every UNWIND batch is sent (batches are pipelined: the server may still be running it)
#: with the statement's name (a ``pipeline.store.queries`` constant
#: name, e.g. "EVIDENCE") and the batch's row count, inside the document's transaction. Use it for
#: progress; an exception it raises aborts the transaction (nothing of the document is written) and
#: propagates unless the driver deems it transient (a ``neo4j.exceptions`` retryable error).
BatchCallback = Callable[[str, int], None]

#: Rows per UNWIND statement. Chosen with bench/neo4j_upsert.py (see docs/neo4j.md for the sweep).
DEFAULT_BATCH_SIZE = 1000

#: Documents per transaction at most (``upsert_batch``/``upsert_analyses``/``upsert_graph``), and rows
#: (mentions + relation triples + facts) per transaction at most; a single larger document gets its
#: own. Chosen with bench/neo4j_upsert.py (see docs/neo4j.md): bigger transactions leave less to
#: recompute and merge (a span or triple is shared with an earlier transaction less often). A
#: transaction of 200,000 rows needs ~2 GiB of the server's transaction memory; a server with less
#: answers with a memory error and the transaction is split (see ``_write``).
DEFAULT_MAX_DOCUMENTS = 500
DEFAULT_MAX_ROWS = 200_000


class _Batcher:
    """Runs one statement over rows in UNWIND batches inside a transaction.

    The batches are pipelined: each is sent before the previous one's result is read, so the driver
    packs batch k+1 while the server runs batch k (the server runs a transaction's statements in
    order; ``run`` returns once the server has answered batch k+1's RUN, which it does after batch
    k's PULL; every batched statement has a result, so that its work is done in the PULL: see
    ``queries.ROW_COUNTED``). A failed batch raises at the next send, at ``run``'s read or at the
    commit, and the transaction rolls back. The row counts of ``queries.ROW_COUNTED`` statements are
    checked by ``check_counts``.
    """

    def __init__(self, tx: Tx, batch_size: int, on_batch: BatchCallback | None) -> None:
        self.tx = tx
        self.batch_size = batch_size
        self.on_batch = on_batch
        self._counted: list[tuple[str, neo4j.Result, int]] = []

    def send(self, name: str, rows: Iterable[Any], **params: Any) -> list[neo4j.Result]:
        """Send ``queries.<name>`` over ``rows``, one UNWIND batch after the other, without reading
        the last batch's result (the next statement or the commit does). ``rows`` may be a generator:
        then each batch's rows are built while the server runs the batch before."""
        query = getattr(queries, name)
        counted = name in queries.ROW_COUNTED
        results = []
        it = iter(rows)
        while batch := list(islice(it, self.batch_size)):
            result = self.tx.run(query, params, rows=batch)
            results.append(result)
            sent = len(batch)
            # run() has packed and sent the batch, but the driver keeps its parameters (for the
            # result's summary) until the transaction closes: every row of the transaction would
            # stay alive through the commit and be freed after it, while the server waits (~0.5 s
            # for a 100k-relation load). Emptying our own list frees the rows now, while the server
            # runs the batch.
            batch.clear()
            if counted:
                self._counted.append((name, result, sent))
            if self.on_batch is not None:
                self.on_batch(name, sent)
        return results

    def check_counts(self) -> None:
        """Raise ``StoreIntegrityError`` if a ``queries.ROW_COUNTED`` batch sent so far wrote another
        number of rows than it was sent (a row whose nodes its MATCH did not find would be dropped
        silently otherwise). Reads those batches' results, so it waits for the server to run them."""
        for name, result, sent in self._counted:
            written = result.single(strict=True)["rows"]
            if written != sent:
                raise StoreIntegrityError(
                    f"{name} wrote {written} of the {sent} rows of a batch (a node it matches on is missing); "
                    "the transaction is rolled back and nothing of it is written"
                )
        self._counted.clear()

    def run(self, name: str, rows: Iterable[Any], **params: Any) -> list[dict[str, Any]]:
        """Run ``queries.<name>`` over ``rows``; the records of every batch, in order."""
        return [record.data() for result in self.send(name, rows, **params) for record in result]


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _apply_labels(tx: Tx, labels: dict[str, str], batcher: _Batcher) -> None:
    """Write relation labels that differ from the stored ones (so an unchanged rerun writes nothing)."""
    if not labels:
        return
    stored = {r["id"]: r["label"] for r in tx.run(queries.LABELS_READ, ids=sorted(labels)).data()}
    changed = [{"id": k, "label": v} for k, v in sorted(labels.items()) if stored.get(k) != v]
    if changed:
        batcher.run("LABELS_WRITE", changed)
        # The edges' labels, as KnowledgeGraph gives them (a typed relation without a label: its name).
        edge_labels = {c["id"]: relation_label(c["id"], {c["id"]: c["label"]}) for c in changed}
        for statement, typed in ((queries.RELABEL, False), (queries.RELABEL_TYPED, True)):
            ids = [k for k in edge_labels if is_typed_relation(k) == typed]
            if ids:
                tx.run(statement, ids=ids, labels={k: edge_labels[k] for k in ids}).consume()


Triple = tuple[str, str, str]


def _remove_contribution(tx: Tx, doc_ids: list[str]) -> tuple[set[str], set[Triple], set[Triple]]:
    """Delete documents' mentions, evidence, fact evidence and sentences; return the span keys, relation
    triples and facts they touched."""
    if not doc_ids:
        return set(), set(), set()
    keys = {r["key"] for r in tx.run(queries.OLD_MENTIONS, ids=doc_ids)}
    pairs = {(r["s"], r["o"], r["t"]) for r in tx.run(queries.OLD_EVIDENCE, ids=doc_ids)}
    facts = {(r["s"], r["o"], r["p"]) for r in tx.run(queries.OLD_FACT_EVIDENCE, ids=doc_ids)}
    tx.run(queries.OLD_SENTENCES, ids=doc_ids).consume()
    return keys, pairs, facts


def _recompute(
    batcher: _Batcher,
    keys: Iterable[str],
    pairs: Iterable[Triple],
    facts: Iterable[Triple],
    orphan_candidates: Iterable[str] | None = None,
) -> None:
    """Recompute the aggregate edges of the triples, the FACTs of the facts and Span properties of the
    keys; delete what lost all support.

    orphan_candidates: the keys that may have lost their last mention (default: all of ``keys``).
    """
    pairs_ = pair_rows(pairs)
    updates = relates_rows(batcher.run("PAIRS_READ", pairs_))
    gone = [p for p in pairs_ if (p["s"], p["o"], p["t"]) not in updates]
    if gone:
        batcher.run("RELATES_DELETE", gone)
    if updates:
        batcher.run("RELATES_WRITE", list(updates.values()))
    fact_pairs = fact_pair_rows(facts)
    fact_updates = facts_rows(batcher.run("FACT_PAIRS_READ", fact_pairs))
    fact_gone = [p for p in fact_pairs if (p["s"], p["o"], p["p"]) not in fact_updates]
    if fact_gone:
        batcher.run("FACTS_DELETE", fact_gone)
    if fact_updates:
        batcher.run("FACTS_WRITE", list(fact_updates.values()))

    key_list = sorted(set(keys))
    candidates = key_list if orphan_candidates is None else sorted(set(orphan_candidates))
    if candidates:
        batcher.run("NODES_DELETE_ORPHANS", candidates)
    if key_list:
        batcher.run(
            "NODES_RECOMPUTE",
            key_list,
            span_labels=ALL_SPAN_NODE_LABELS,
            label_map=ENTITY_LABELS,
            pronoun_label=PRONOUN_LABEL,
        )


def _batch_tx(
    tx: Tx,
    batch: list[DocumentRows],
    labels: dict[str, str],
    batch_size: int,
    on_batch: BatchCallback | None,
) -> list[UpsertResult]:
    """Documents with distinct ids, one transaction; one result per document, in order.

    Idempotent: the driver may call it again after a transient error. Every statement runs once per
    batch over all its documents' rows (in UNWIND chunks of ``batch_size``), and the aggregates (Span
    properties, aggregate edges) are written once per batch: final at once for what only the batch supports,
    recomputed from the stored per-document rows for what other documents share or the old versions of
    replaced documents touched.
    """
    batcher = _Batcher(tx, batch_size, on_batch)
    states = tx.run(queries.DOC_STATES, ids=[r.doc_id for r in batch]).data()
    _apply_labels(tx, labels, batcher)
    top = states[0]["top"] if states else []
    next_seq = int(top[0]) + 1 if top else 0  # a replaced document counts as ingested anew
    results: list[UpsertResult] = []
    write: list[tuple[DocumentRows, int]] = []
    replaced: list[str] = []
    for rows, state in zip(batch, states, strict=True):
        old_hash = state["content_hash"]
        # the same text analysed the same way (settings, analysis format, typed set: settings_json)
        if old_hash == rows.contribution.content_hash and state["settings"] == settings_json(rows):
            results.append("unchanged")
            continue
        results.append("added" if old_hash is None else "replaced")
        if old_hash is not None:
            replaced.append(rows.doc_id)
        write.append((rows, next_seq))
        next_seq += 1
    if not write:
        return results
    docs = [rows for rows, _ in write]
    old_keys, old_pairs, old_facts = _remove_contribution(tx, replaced)

    # Nodes first, then the relationships between them, then the aggregates. Statements are pipelined
    # (_Batcher) and the per-document rows built batch by batch, so the Python that builds and packs
    # the next batch runs while the server works on the one before.
    tx.run(
        queries.DOCS_WRITE,
        rows=[
            {
                "id": rows.doc_id,
                "content_hash": rows.contribution.content_hash,
                "source": rows.source,
                "settings": settings_json(rows),
                "seq": seq,
            }
            for rows, seq in write
        ],
    )
    matched = {r["key"] for r in batcher.run("SPANS", span_rows(write))}  # spans that existed
    batcher.send("SENTENCES", ([r.doc_id, i, t] for r in docs for i, t in sorted(r.contribution.sentences.items())))
    batcher.send("MENTIONS", (row for r in docs for row in mention_rows(r)))
    batcher.send("EVIDENCE", (row for r in docs for row in evidence_rows(r)))
    relates = relates_new_rows(docs)
    batcher.send("RELATES_CREATE", [r for r in relates if r[0] not in matched or r[1] not in matched])
    both_old = [r for r in relates if r[0] in matched and r[1] in matched]
    shared = {(r["s"], r["o"], r["t"]) for r in batcher.run("RELATES_NEW", both_old)}
    batcher.send("FACT_EVIDENCE", (row for r in docs for row in fact_evidence_rows(r)))
    facts = facts_new_rows(docs)
    batcher.send("FACTS_CREATE", [f for f in facts if f["s"] not in matched or f["o"] not in matched])
    facts_both_old = [f for f in facts if f["s"] in matched and f["o"] in matched]
    shared_facts = {(r["s"], r["o"], r["p"]) for r in batcher.run("FACTS_NEW", facts_both_old)}
    # Recompute what other documents share or what the old versions touched; the rest is final already.
    new_keys = {k for r in docs for k in r.contribution.nodes}
    _recompute(
        batcher,
        old_keys | matched,
        old_pairs | shared,
        old_facts | shared_facts,
        orphan_candidates=old_keys - new_keys,
    )
    batcher.check_counts()
    return results


def _delete_tx(tx: neo4j.ManagedTransaction, doc_id: str, batch_size: int, on_batch: BatchCallback | None) -> bool:
    if tx.run(queries.DOC_HASH, id=doc_id).single(strict=True)["content_hash"] is None:
        return False
    keys, pairs, facts = _remove_contribution(tx, [doc_id])
    tx.run(queries.DOC_DELETE, id=doc_id).consume()
    _recompute(_Batcher(tx, batch_size, on_batch), keys, pairs, facts)
    return True


# ── public API ───────────────────────────────────────────────────────────────────────────────────


def _size(rows: DocumentRows) -> int:
    """A document's rows as ``max_rows`` counts them: mentioned span keys, relation triples, facts."""
    c = rows.contribution
    return len(c.nodes) + len(c.edges) + len(c.facts)


def _groups(batch: Sequence[DocumentRows], max_documents: int, max_rows: int) -> Iterable[list[DocumentRows]]:
    """Split into transactions: at most max_documents documents and (but at least one document)
    max_rows rows each, and a new one whenever a document id repeats (its later version is written
    after the earlier one, as if one by one)."""
    group: list[DocumentRows] = []
    ids: set[str] = set()
    rows = 0
    for r in batch:
        size = _size(r)
        if group and (r.doc_id in ids or len(group) >= max_documents or rows + size > max_rows):
            yield group
            group, ids, rows = [], set(), 0
        group.append(r)
        ids.add(r.doc_id)
        rows += size
    if group:
        yield group


def _check_limits(batch_size: int, max_documents: int, max_rows: int) -> None:
    _check_batch_size(batch_size)
    for name, value in (("max_documents", max_documents), ("max_rows", max_rows)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


#: The server's codes for a transaction that outgrew its memory (``db.memory.transaction.max``, the
#: pool ``db.memory.transaction.total.max``, off-heap transaction state, the heap itself).
MEMORY_ERROR_CODES = frozenset(
    f"Neo.TransientError.General.{name}"
    for name in (
        "TransactionMemoryLimit",
        "MemoryPoolOutOfMemoryError",
        "TransactionOutOfMemoryError",
        "OutOfMemoryError",
    )
)


class _TransactionTooLarge(Exception):
    """Raised inside a transaction function for a memory error of the server, so that the driver rolls
    the transaction back without retrying the same (too large) transaction; ``_write`` splits it."""

    def __init__(self, error: neo4j.exceptions.Neo4jError) -> None:
        super().__init__(str(error))
        self.error = error


_R = TypeVar("_R")

#: Retries of ``_execute_write``, as the driver's defaults for ``execute_write``: for up to 30 s after
#: the first failure, waits from 1 s doubling, +-20%.
RETRY_S = 30.0


def _execute_write(s: neo4j.Session, work: Callable[..., _R], *args: Any) -> _R:
    """``s.execute_write(work, *args)``, the same retries of transient errors (deadlocks between
    writers, a lost connection), except a memory error of the server, raised by a statement or by the
    commit: that one is not retried (the same transaction would not fit again) but raised as
    ``_TransactionTooLarge``. The transaction commits after ``work`` returns, or is rolled back."""
    delay, first_failure = 1.0, None
    while True:
        try:
            with s.begin_transaction() as tx:
                result = work(tx, *args)
                tx.commit()
            return result
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError) as exc:
            if isinstance(exc, neo4j.exceptions.Neo4jError) and exc.code in MEMORY_ERROR_CODES:
                raise _TransactionTooLarge(exc) from exc
            if not exc.is_retryable():
                raise
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            if now - first_failure > RETRY_S:
                raise
            wait = delay * random.uniform(0.8, 1.2)
            log.warning("transaction failed and will be retried in %.1f s (%s)", wait, exc)
            time.sleep(wait)
            delay *= 2


def _write(
    driver: neo4j.Driver,
    database: str,
    batch: Sequence[DocumentRows],
    labels: dict[str, str],
    batch_size: int,
    on_batch: BatchCallback | None,
    max_documents: int,
    max_rows: int,
) -> list[UpsertResult]:
    """Write validated documents, one managed transaction per group; results in order.

    A group the server has no transaction memory for (a memory error, raised before anything of it is
    committed) is split in two halves, each its own transaction, in order, and the rest of the call
    keeps to the smaller size; a single document that does not fit raises the server's error.
    """
    results: list[UpsertResult] = []
    pending = list(_groups(batch, max_documents, max_rows))[::-1]  # a stack: the next group last
    with session(driver, database) as s, paused_cyclic_gc():  # rows: millions of small lists
        while pending:
            group = pending.pop()
            try:
                results.extend(_execute_write(s, _batch_tx, group, labels, batch_size, on_batch))
            except _TransactionTooLarge as exc:
                if len(group) == 1:
                    raise exc.error from None
                # Nothing of the group was committed: write it again as two transactions, and regroup
                # what follows at the size that is known to fit.
                half = len(group) // 2
                rest = [r for g in reversed(pending) for r in g]
                max_rows = max(1, sum(_size(r) for r in group[:half]))
                pending = [*list(_groups(rest, max_documents, max_rows))[::-1], group[half:], group[:half]]
                continue
            labels = {}  # written (or found equal) with the first group
    if labels:  # no document at all: still store the labels
        set_relation_labels(driver, database, labels)
    return results


def upsert_batch(
    driver: neo4j.Driver,
    database: str,
    analyses: Sequence[DocumentAnalysis],
    relation_labels: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    on_batch: BatchCallback | None = None,
    max_documents: int = DEFAULT_MAX_DOCUMENTS,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[UpsertResult | ValueError]:
    """Write a batch of analyses, many documents per managed transaction; one result per analysis.

    Every analysis is validated before anything is written: one the store refuses comes back as its
    ``ValueError`` (not raised) and the others are written. The valid ones go in order, in transactions
    of at most ``max_documents`` documents and ``max_rows`` rows (mentions + relation triples + facts; a larger
    single document gets a transaction of its own); each transaction commits all its documents or none.
    A transaction the server has no memory for is split in halves (see ``_write``). A document stored
    with the same content hash is skipped ("unchanged"), one stored with another hash is "replaced"
    exactly, else "added"; the same id twice in a batch is written in order, as by two calls. Relation labels that differ from the stored ones are written with the first transaction.
    ``on_batch``: see ``BatchCallback``.

    Raises:
        ValueError: a relation label outside the whitelist, or a bad batch_size/max_documents/max_rows
            (nothing is written).
    """
    _check_limits(batch_size, max_documents, max_rows)
    labels = check_relation_labels(relation_labels)
    checked: list[DocumentRows | ValueError] = []
    # Millions of small lists (see pipeline.gc_pause): paused from the first row to the last commit,
    # so that no collection walks the rows between building and writing them.
    with paused_cyclic_gc():
        for analysis in analyses:
            try:
                checked.append(rows_from_analysis(analysis))
            except ValueError as exc:
                checked.append(exc)
        valid = [r for r in checked if isinstance(r, DocumentRows)]
        ensure_schema_once(driver, database)
        written = iter(_write(driver, database, valid, labels, batch_size, on_batch, max_documents, max_rows))
    return [r if isinstance(r, ValueError) else next(written) for r in checked]


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
    For many documents, ``upsert_batch`` is much faster (many documents per transaction).

    Raises:
        ValueError: a relation type, entity label or span kind outside the whitelists, or an analysis
            that breaks its contract (index out of range, non-finite score). Nothing is written.
    """
    (result,) = upsert_batch(driver, database, [analysis], relation_labels, batch_size, on_batch=on_batch)
    if isinstance(result, ValueError):
        raise result
    return result


def upsert_analyses(
    driver: neo4j.Driver,
    database: str,
    analyses: Iterable[DocumentAnalysis],
    relation_labels: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_result: Callable[[DocumentAnalysis, UpsertResult], None] | None = None,
    *,
    on_batch: BatchCallback | None = None,
    max_documents: int = DEFAULT_MAX_DOCUMENTS,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> dict[str, int]:
    """Write a stream of analyses as ``upsert_batch`` does (many documents per transaction), in order.

    The stream is read ``max_documents`` at a time; a bad analysis raises its ValueError after the
    documents before it were committed (each transaction is atomic, the stream is not). Returns
    {"added": n, "unchanged": n, "replaced": n}.
    """
    _check_limits(batch_size, max_documents, max_rows)
    labels = check_relation_labels(relation_labels)
    ensure_schema_once(driver, database)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    chunk: list[tuple[DocumentAnalysis, DocumentRows]] = []
    error: ValueError | None = None
    wrote_labels = False

    def flush() -> None:
        nonlocal labels, wrote_labels
        if not chunk:
            return
        rows = [r for _, r in chunk]
        for (analysis, _), result in zip(
            chunk, _write(driver, database, rows, labels, batch_size, on_batch, max_documents, max_rows), strict=True
        ):
            counts[result] += 1
            if on_result is not None:
                on_result(analysis, result)
        labels, wrote_labels = {}, True
        chunk.clear()

    # The collector is paused while a document's rows are built, not while a stream computes the
    # next analysis. A sequence is computed already, so nothing but the rows allocates between its
    # documents: there the pause lasts from a chunk's first document to its commit, as in
    # upsert_batch. Else the rows built so far survive each document's pause, and a full collection
    # walks all of them (and the caller's objects) again: 0.4 s before the first statement of the
    # bench's 100k-relation load.
    whole_chunk = isinstance(analyses, Sequence)
    with contextlib.ExitStack() as chunk_pause:
        for analysis in analyses:
            if whole_chunk and not chunk:
                chunk_pause.enter_context(paused_cyclic_gc())
            try:
                with paused_cyclic_gc():
                    chunk.append((analysis, rows_from_analysis(analysis)))
            except ValueError as exc:
                error = exc
                break
            if len(chunk) >= max_documents:
                flush()
                chunk_pause.close()
        flush()
    if labels and not wrote_labels and error is None:  # no document at all: still store the labels
        set_relation_labels(driver, database, labels)
    if error is not None:
        raise error
    return counts


def set_relation_labels(driver: neo4j.Driver, database: str, relation_labels: dict[str, str]) -> None:
    """Store human labels for relations and relabel their aggregate edges (only changed ones are written)."""
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
    """Write a ``KnowledgeGraph``: its documents, in its ingest order, as by ``upsert_batch``.

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
    with paused_cyclic_gc():
        rows = [rows_from_contribution(c) for c in provenance.contributions]  # validate all first
    ensure_schema_once(driver, database)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    for result in _write(driver, database, rows, labels, batch_size, on_batch, DEFAULT_MAX_DOCUMENTS, DEFAULT_MAX_ROWS):
        counts[result] += 1
    return counts
