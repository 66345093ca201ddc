"""Everything that talks to Neo4j. The only Python module with Cypher in it (the rest is in queries/).

Model (see docs/neo4j.md for the reasons)::

    (:Document {id, content_hash, source, ingested_at, seq, settings})
    (:Sentence {doc_id, index, text})-[:PART_OF]->(:Document)          cited sentences only
    (:Span {key, text, label, kind, mentions, documents})              + :Person / :Org / ... for entities
    (:Span)-[:MENTIONED_IN {count, position, starts, ends, sentences, text_values, text_counts,
                            label_values, label_counts, kind_values, kind_counts}]->(:Document)
    (:Span)-[:EVIDENCE {type, doc_id, count, score_max, score_sum, scores, sentences,
                        source_starts, source_ends, target_starts, target_ends}]->(:Span)   per document
    (:Span)-[:RELATES {type, label, count, score_max, score_mean, documents}]->(:Span)      aggregate
    (:RelationType {id, label})                                          human labels of relation ids

Per-document rows (MENTIONED_IN, EVIDENCE, Sentence) are the source of truth; Span properties and
RELATES edges are aggregates recomputed from them for every node and pair a document touches, with
the same rules as ``pipeline.graph.KnowledgeGraph`` (exact score sums, most-frequent text with
first-seen ties), so ``read_graph`` gives back the graph ``KnowledgeGraph`` would build.

Safety: every value travels as a query parameter. Labels and relation types that end up in the
database as labels or ``type`` properties pass a whitelist first (``ENTITY_LABELS``,
``RELATION_TYPE_RE``); anything else raises ValueError naming the value, before anything is written.
No query text is ever built from data (entity labels are set with Cypher's dynamic ``$(...)`` label
syntax from a whitelisted parameter).
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import neo4j
import networkx as nx
from neo4j import exceptions as neo4j_exc

from pipeline.errors import Neo4jConnectionError
from pipeline.store.settings import Neo4jSettings
from pipeline.types import DocumentAnalysis

UpsertResult = Literal["added", "unchanged", "replaced"]

#: Rows per UNWIND statement. Chosen with bench/neo4j_upsert.py (see docs/neo4j.md for the sweep).
DEFAULT_BATCH_SIZE = 1000

#: spaCy (OntoNotes) entity label -> the extra Neo4j label an entity span gets. The only labels,
#: besides the fixed Document/Sentence/Span/RelationType, that ever reach the database.
ENTITY_LABELS: dict[str, str] = {
    "PERSON": "Person",
    "NORP": "Norp",
    "FAC": "Facility",
    "ORG": "Org",
    "GPE": "Gpe",
    "LOC": "Location",
    "PRODUCT": "Product",
    "EVENT": "Event",
    "WORK_OF_ART": "WorkOfArt",
    "LAW": "Law",
    "LANGUAGE": "Language",
    "DATE": "Date",
    "TIME": "Time",
    "PERCENT": "Percent",
    "MONEY": "Money",
    "QUANTITY": "Quantity",
    "ORDINAL": "Ordinal",
    "CARDINAL": "Cardinal",
}
_ALL_ENTITY_NODE_LABELS = sorted(ENTITY_LABELS.values())

#: Relation type ids as pipeline.extractor writes them: L{layer}H{head}k{k} or L{layer}H{head}c{r}[-{r2}...].
RELATION_TYPE_RE = re.compile(r"^L\d{1,4}H\d{1,4}(k\d{1,5}|c\d{1,5}(-\d{1,5})*)$")
SPAN_KINDS = frozenset({"entity", "noun_chunk", "word"})

QUERIES_DIR = Path(__file__).resolve().parent / "cypher"
_QUERY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


# ── connection ───────────────────────────────────────────────────────────────────────────────────


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
    """Delete every node and relationship (batched, so large graphs do not need one huge transaction).

    Relationships go first, 10,000 per inner transaction: a DETACH DELETE of 10,000 nodes would also
    delete all their relationships in that one transaction, which for hub nodes can exceed the
    server's transaction memory pool.
    """
    # CALL ... IN TRANSACTIONS needs an auto-commit transaction, hence session.run.
    with driver.session(database=database) as session:
        session.run("MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS").consume()
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


def server_info(driver: neo4j.Driver, database: str) -> dict[str, Any]:
    """Name, version and edition of the server behind the driver."""
    records, _, _ = driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition",
        database_=database,
    )
    return dict(records[0])


# ── schema ───────────────────────────────────────────────────────────────────────────────────────

# Community edition has uniqueness constraints (each backed by a range index) and plain indexes.
# Deliberately NO index on RELATES.type: the planner would use it for MERGE (a)-[:RELATES {type}]->(b)
# and scan every edge of that type per merged row (quadratic; see docs/neo4j.md), where expanding
# between the two already-bound span nodes costs only their degree.
SCHEMA_STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT qkgraph_document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT qkgraph_span_key IF NOT EXISTS FOR (s:Span) REQUIRE s.key IS UNIQUE",
    "CREATE CONSTRAINT qkgraph_sentence_id IF NOT EXISTS FOR (s:Sentence) REQUIRE (s.doc_id, s.index) IS UNIQUE",
    "CREATE CONSTRAINT qkgraph_relation_type_id IF NOT EXISTS FOR (t:RelationType) REQUIRE t.id IS UNIQUE",
    "CREATE INDEX qkgraph_evidence_doc IF NOT EXISTS FOR ()-[e:EVIDENCE]-() ON (e.doc_id)",
    "CREATE INDEX qkgraph_document_seq IF NOT EXISTS FOR (d:Document) ON (d.seq)",
    "CREATE INDEX qkgraph_span_text IF NOT EXISTS FOR (s:Span) ON (s.text)",
)

# Drivers whose database already got the schema in this process (so upserts do not repeat it).
_schema_done: weakref.WeakKeyDictionary[neo4j.Driver, set[str]] = weakref.WeakKeyDictionary()


def ensure_schema(driver: neo4j.Driver, database: str) -> None:
    """Create the constraints and indexes (idempotent: ``IF NOT EXISTS``) and wait until they are online."""
    for statement in SCHEMA_STATEMENTS:
        # Schema changes cannot share a transaction with data writes; each runs on its own.
        driver.execute_query(statement, database_=database)
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)
    _schema_done.setdefault(driver, set()).add(database)


def _ensure_schema_once(driver: neo4j.Driver, database: str) -> None:
    if database not in _schema_done.get(driver, set()):
        ensure_schema(driver, database)


def _session(driver: neo4j.Driver, database: str) -> neo4j.Session:
    """A session on ``database`` that does not log "property key does not exist" notices.

    Those fire for every query on a database that has not seen a property yet (a fresh one), and
    say nothing useful here; performance and deprecation notices still come through.
    """
    return driver.session(
        database=database,
        notifications_disabled_classifications=[neo4j.NotificationDisabledClassification.UNRECOGNIZED],
    )


# ── validation ───────────────────────────────────────────────────────────────────────────────────


def check_relation_type(relation: Any) -> str:
    """Return ``relation`` if it is a relation type id (``L2H8k12``, ``L0H3c1-4``); else ValueError."""
    if not isinstance(relation, str) or not RELATION_TYPE_RE.fullmatch(relation):
        raise ValueError(
            f"relation type {relation!r} is not allowed (expected L<layer>H<head>k<k> or "
            "L<layer>H<head>c<r>[-<r>...], e.g. 'L2H8k12')"
        )
    return relation


def check_entity_label(label: Any) -> str:
    """Return the Neo4j label for a spaCy entity label ("PERSON" -> "Person"); else ValueError."""
    if not isinstance(label, str) or label not in ENTITY_LABELS:
        raise ValueError(f"entity label {label!r} is not allowed (expected one of {', '.join(ENTITY_LABELS)})")
    return ENTITY_LABELS[label]


def _check_relation_labels(relation_labels: dict[str, str] | None) -> dict[str, str]:
    labels = dict(relation_labels or {})
    for relation, label in labels.items():
        check_relation_type(relation)
        if not isinstance(label, str):
            raise ValueError(f"label of relation type {relation!r} must be a string, got {label!r}")
    return labels


# ── per-document rows ────────────────────────────────────────────────────────────────────────────


@dataclass
class _Mention:
    """What one document says about one span key (becomes one MENTIONED_IN)."""

    position: int  # order of the key's first mention in the document
    count: int = 0
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    sentences: list[int] = field(default_factory=list)
    texts: dict[str, int] = field(default_factory=dict)  # first-seen order
    labels: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Ev:
    """One deduplicated evidence item (one sentence) for a (source, target, type) triple."""

    sentence: int
    source_start: int
    source_end: int
    target_start: int
    target_end: int
    score: float

    def sort_key(self) -> tuple[float, int, int, int, int, int]:
        # Same order as pipeline.graph._Evidence within one document: best first, then offsets.
        return (-self.score, self.source_start, self.source_end, self.target_start, self.target_end, self.sentence)


@dataclass
class _DocRows:
    """One document version, validated and shaped into the rows the Cypher statements take."""

    doc_id: str
    content_hash: str
    source: str
    settings: dict[str, Any]
    mentions: dict[str, _Mention]
    evidence: dict[tuple[str, str, str], list[_Ev]]  # (source key, target key, type) -> best first
    sentences: dict[int, str]  # cited sentences only


def _check_span_label(doc_id: str, index: int, label: Any, kind: Any) -> None:
    if kind not in SPAN_KINDS:
        raise ValueError(f"document {doc_id!r}: span {index} has kind {kind!r} (expected one of {sorted(SPAN_KINDS)})")
    if label != "":
        try:
            check_entity_label(label)
        except ValueError as exc:
            raise ValueError(f"document {doc_id!r}: span {index}: {exc}") from None


def _rows_from_analysis(analysis: DocumentAnalysis) -> _DocRows:
    """Validate an analysis and turn it into rows, with pipeline.graph's dedupe and self-loop rules."""
    doc = analysis.document
    if not isinstance(doc.id, str) or doc.id == "":
        raise ValueError(f"document id must be a non-empty string, got {doc.id!r}")
    mentions: dict[str, _Mention] = {}
    for i, span in enumerate(analysis.spans):
        _check_span_label(doc.id, i, span.label, span.kind)
        m = mentions.get(span.key)
        if m is None:
            m = mentions[span.key] = _Mention(position=len(mentions))
        m.count += 1
        m.starts.append(int(span.start_char))
        m.ends.append(int(span.end_char))
        m.sentences.append(int(span.sent_index))
        m.texts[span.text] = m.texts.get(span.text, 0) + 1
        m.labels[span.label] = m.labels.get(span.label, 0) + 1
        m.kinds[span.kind] = m.kinds.get(span.kind, 0) + 1

    best: dict[tuple[str, str, str, int], _Ev] = {}
    for i, rel in enumerate(analysis.relations):
        check_relation_type(rel.relation)
        score = analysis.checked_score(i)
        src, tgt = analysis.spans[rel.source], analysis.spans[rel.target]
        if src.key == tgt.key:
            continue  # self-loop, dropped as in pipeline.graph
        ev = _Ev(rel.sent_index, src.start_char, src.end_char, tgt.start_char, tgt.end_char, score)
        dedupe = (src.key, tgt.key, rel.relation, rel.sent_index)
        kept = best.get(dedupe)
        if kept is None or ev.sort_key() < kept.sort_key():
            best[dedupe] = ev
    evidence: dict[tuple[str, str, str], list[_Ev]] = {}
    for (s, o, t, _), ev in best.items():
        evidence.setdefault((s, o, t), []).append(ev)
    for items in evidence.values():
        items.sort(key=_Ev.sort_key)
    cited = sorted({ev.sentence for items in evidence.values() for ev in items})
    return _DocRows(
        doc_id=doc.id,
        content_hash=doc.content_hash,
        source=doc.source,
        settings=dict(analysis.settings),
        mentions=mentions,
        evidence=dict(sorted(evidence.items())),
        sentences={i: analysis.sentence_text(i) for i in cited},
    )


def _rows_from_contribution(item: dict[str, Any]) -> _DocRows:
    """Rows from one contribution of a KnowledgeGraph's provenance block (no mention offsets there)."""
    doc_id = item["document"]
    mentions: dict[str, _Mention] = {}
    for position, node in enumerate(item["nodes"]):
        m = _Mention(position=position, count=int(node["mentions"]))
        m.texts = {str(v): int(n) for v, n in node["texts"]}
        m.labels = {str(v): int(n) for v, n in node["labels"]}
        m.kinds = {str(v): int(n) for v, n in node["kinds"]}
        for label in m.labels:
            if label != "":
                check_entity_label(label)
        for kind in m.kinds:
            _check_span_label(doc_id, position, "", kind)
        mentions[node["node"]] = m
    evidence: dict[tuple[str, str, str], list[_Ev]] = {}
    for e in item["evidence"]:
        check_relation_type(e["relation"])
        evidence.setdefault((e["source"], e["target"], e["relation"]), []).append(
            _Ev(
                int(e["sentence_index"]),
                int(e["source_start"]),
                int(e["source_end"]),
                int(e["target_start"]),
                int(e["target_end"]),
                float(e["score"]),
            )
        )
    for items in evidence.values():
        items.sort(key=_Ev.sort_key)
    return _DocRows(
        doc_id=doc_id,
        content_hash=item["content_hash"],
        source="",
        settings=dict(item.get("settings", {})),
        mentions=mentions,
        evidence=dict(sorted(evidence.items())),
        sentences={int(i): str(text) for i, text in item["sentences"]},
    )


# ── aggregates (pure Python, the same rules as pipeline.graph) ──────────────────────────────────


def _most_frequent(tally: dict[str, list[Any]]) -> str:
    """Most frequent value; ties -> first seen (document order, then position in the document)."""
    return min(tally.items(), key=lambda item: (-item[1][0], item[1][1]))[0]


def _node_aggregate(key: str, contribs: list[dict[str, Any]]) -> dict[str, Any]:
    """Span properties from per-document tallies (the rule _Q_NODES_RECOMPUTE applies on the server)."""
    contribs = sorted(contribs, key=lambda c: (c["seq"], c["doc"]))
    tallies: dict[str, dict[str, list[Any]]] = {"text": {}, "label": {}, "kind": {}}
    mentions = 0
    for rank, c in enumerate(contribs):
        mentions += int(c["count"])
        for name in ("text", "label", "kind"):
            tally = tallies[name]
            for pos, (value, n) in enumerate(zip(c[f"{name}_values"], c[f"{name}_counts"])):
                entry = tally.get(value)
                if entry is None:
                    tally[value] = [int(n), (rank, pos)]
                else:
                    entry[0] += int(n)
    label = _most_frequent(tallies["label"])
    kind = _most_frequent(tallies["kind"])
    return {
        "key": key,
        "text": _most_frequent(tallies["text"]),
        "label": label,
        "kind": kind,
        "mentions": mentions,
        "documents": sorted({c["doc"] for c in contribs}),
        "extra_labels": [ENTITY_LABELS[label]] if kind == "entity" and label in ENTITY_LABELS else [],
    }


def _mention_contrib(doc_id: str, seq: int, m: _Mention) -> dict[str, Any]:
    """A _Mention as one contribution for _node_aggregate (a span only this document mentions)."""
    return {
        "doc": doc_id,
        "seq": seq,
        "count": m.count,
        "text_values": list(m.texts),
        "text_counts": list(m.texts.values()),
        "label_values": list(m.labels),
        "label_counts": list(m.labels.values()),
        "kind_values": list(m.kinds),
        "kind_counts": list(m.kinds.values()),
    }


def _edge_aggregate(s: str, o: str, t: str, per_doc: list[tuple[str, list[float]]]) -> dict[str, Any]:
    """RELATES properties from the EVIDENCE rows of every document supporting the triple."""
    scores = [float(x) for _, xs in per_doc for x in xs]
    total = sum((Fraction(x) for x in scores), Fraction(0))  # exact, so order never matters
    return {
        "s": s,
        "o": o,
        "t": t,
        "count": len(scores),
        "score_max": max(scores),
        "score_mean": float(total / len(scores)),
        "documents": sorted({doc for doc, _ in per_doc}),
    }


# ── Cypher for the document upsert ───────────────────────────────────────────────────────────────

_Q_DOC_HASH = "OPTIONAL MATCH (d:Document {id: $id}) RETURN d.content_hash AS content_hash"
# The stored hash and the highest ingest number, in one round trip (the seq index serves the ORDER BY).
_Q_DOC_STATE = """
OPTIONAL MATCH (d:Document {id: $id})
RETURN d.content_hash AS content_hash,
       COLLECT { MATCH (x:Document) WHERE x.seq IS NOT NULL RETURN x.seq ORDER BY x.seq DESC LIMIT 1 } AS top
"""
_Q_LABELS_READ = "UNWIND $ids AS id OPTIONAL MATCH (t:RelationType {id: id}) RETURN id, t.label AS label"
_Q_LABELS_WRITE = """
UNWIND $rows AS row
MERGE (t:RelationType {id: row.id})
SET t.label = row.label
"""
# One pass over RELATES (there is no index on its type, see SCHEMA_STATEMENTS).
_Q_RELABEL = "MATCH ()-[r:RELATES]->() WHERE r.type IN $ids SET r.label = $labels[r.type]"
_Q_OLD_MENTIONS = "MATCH (s:Span)-[m:MENTIONED_IN]->(:Document {id: $id}) DELETE m RETURN s.key AS key"
_Q_OLD_EVIDENCE = """
MATCH (a:Span)-[e:EVIDENCE {doc_id: $id}]->(b:Span)
WITH a.key AS s, b.key AS o, e.type AS t, e
DELETE e
RETURN s, o, t
"""
_Q_OLD_SENTENCES = "MATCH (s:Sentence {doc_id: $id}) DETACH DELETE s"
_Q_DOC_WRITE = """
MERGE (d:Document {id: $id})
SET d.content_hash = $content_hash, d.source = $source, d.settings = $settings, d.seq = $seq,
    d.ingested_at = datetime()
"""
_Q_SENTENCES = """
MATCH (d:Document {id: $id})
UNWIND $rows AS row
MERGE (s:Sentence {doc_id: $id, index: row.index})
SET s.text = row.text
MERGE (s)-[:PART_OF]->(d)
"""
# MERGE each span; a span this transaction creates is mentioned by this document only, so it gets its
# final properties here and needs no recompute. ON MATCH SET takes the node's write lock, so writers
# touching the same spans serialize and each recompute reads committed, complete data.
# Rows of the three big statements are positional lists, not maps: the driver's pure-Python
# encoder spends most of the client time per packed value, and map keys doubled the count.

# MERGE each span; a span this transaction creates is mentioned by this document only, so it gets its
# final properties here and needs no recompute. ON MATCH SET takes the node's write lock, so writers
# touching the same spans serialize and each recompute reads committed, complete data.
# row: [key, text, label, kind, mentions, extra_labels]
_Q_SPANS = """
UNWIND $rows AS row
MERGE (s:Span {key: row[0]})
ON CREATE SET s.mentions = 0
ON MATCH SET s.mentions = s.mentions
WITH s, row, s.mentions = 0 AS created
CALL (s, row, created) {
  WITH s, row WHERE created
  SET s.text = row[1], s.label = row[2], s.kind = row[3], s.mentions = row[4], s.documents = [$id]
  SET s:$(row[5])
}
WITH row, created WHERE NOT created
RETURN row[0] AS key
"""
# The document's own relationships were deleted above (or never existed), so CREATE is exact here
# and avoids MERGE's scan of every relationship between the two nodes.
# row: [key, count, position, starts, ends, sentences, text_values, text_counts, label_values,
#       label_counts, kind_values, kind_counts]
_Q_MENTIONS = """
MATCH (d:Document {id: $id})
UNWIND $rows AS row
MATCH (s:Span {key: row[0]})
CREATE (s)-[m:MENTIONED_IN]->(d)
SET m.count = row[1], m.position = row[2], m.starts = row[3], m.ends = row[4], m.sentences = row[5],
    m.text_values = row[6], m.text_counts = row[7], m.label_values = row[8], m.label_counts = row[9],
    m.kind_values = row[10], m.kind_counts = row[11]
"""
# Evidence, and the RELATES aggregate right away when this document is the triple's only support
# (the common case); triples with evidence from other documents are recomputed afterwards.
# row: [source key, target key, type, score_mean (exact), scores, sentences, source_starts,
#       source_ends, target_starts, target_ends], items best first
_Q_EVIDENCE = """
UNWIND $rows AS row
MATCH (a:Span {key: row[0]})
MATCH (b:Span {key: row[1]})
CREATE (a)-[e:EVIDENCE]->(b)
SET e.type = row[2], e.doc_id = $id, e.count = size(row[4]), e.score_max = row[4][0],
    e.score_sum = reduce(total = 0.0, x IN row[4] | total + x), e.score_mean = row[3], e.scores = row[4],
    e.sentences = row[5], e.source_starts = row[6], e.source_ends = row[7], e.target_starts = row[8],
    e.target_ends = row[9]
WITH a, b, row, e, COUNT { (a)-[x:EVIDENCE]->(b) WHERE x.type = row[2] } = 1 AS alone
CALL (a, b, e, alone) {
  WITH a, b, e WHERE alone
  OPTIONAL MATCH (rt:RelationType {id: e.type})
  MERGE (a)-[r:RELATES {type: e.type}]->(b)
  SET r.label = coalesce(rt.label, ''), r.count = e.count, r.score_max = e.score_max,
      r.score_mean = e.score_mean, r.documents = [e.doc_id]
}
WITH row, alone WHERE NOT alone
RETURN row[0] AS s, row[1] AS o, row[2] AS t
"""

_Q_PAIRS_READ = """
UNWIND $rows AS p
MATCH (a:Span {key: p.s})-[e:EVIDENCE {type: p.t}]->(b:Span {key: p.o})
RETURN p.s AS s, p.o AS o, p.t AS t, e.doc_id AS doc, e.scores AS scores
"""
_Q_RELATES_WRITE = """
UNWIND $rows AS row
MATCH (a:Span {key: row.s})
MATCH (b:Span {key: row.o})
OPTIONAL MATCH (rt:RelationType {id: row.t})
MERGE (a)-[r:RELATES {type: row.t}]->(b)
SET r.label = coalesce(rt.label, ''), r.count = row.count, r.score_max = row.score_max,
    r.score_mean = row.score_mean, r.documents = row.documents
"""
_Q_RELATES_DELETE = """
UNWIND $rows AS p
MATCH (a:Span {key: p.s})-[r:RELATES {type: p.t}]->(b:Span {key: p.o})
DELETE r
"""
# Span properties recomputed on the server from every document's MENTIONED_IN tallies (shipping
# them to Python was the dominant cost for spans that many documents mention). Same rule as
# pipeline.graph and _node_aggregate: most frequent value over all mentions; ties -> first seen,
# documents in ingest order (seq, then id), values in first-seen order within a document.
# Entity labels come from ENTITY_LABELS only (whitelist) and go in as parameters via $(...).
_Q_NODES_RECOMPUTE = """
UNWIND $rows AS key
MATCH (s:Span {key: key})
CALL (s) {
  MATCH (s)-[m:MENTIONED_IN]->(d:Document)
  WITH m, d ORDER BY d.id
  RETURN sum(m.count) AS mentions, collect(d.id) AS documents
}
CALL (s) {
  MATCH (s)-[m:MENTIONED_IN]->(d:Document)
  UNWIND [[0, m.text_values, m.text_counts], [1, m.label_values, m.label_counts],
          [2, m.kind_values, m.kind_counts]] AS tally
  UNWIND range(0, size(tally[1]) - 1) AS i
  WITH tally[0] AS field, tally[1][i] AS value, tally[2][i] AS n, d.seq AS seq, d.id AS doc, i
  ORDER BY seq, doc, i
  WITH field, value, sum(n) AS total, head(collect(seq)) AS first_seq, head(collect(doc)) AS first_doc,
       head(collect(i)) AS first_pos
  ORDER BY field, total DESC, first_seq, first_doc, first_pos
  WITH field, head(collect(value)) AS best
  ORDER BY field
  RETURN collect(best) AS best
}
WITH s, mentions, documents, best[0] AS text, best[1] AS label, best[2] AS kind
SET s.text = text, s.label = label, s.kind = kind, s.mentions = mentions, s.documents = documents
REMOVE s:$($entity_labels)
SET s:$(CASE WHEN kind = 'entity' AND label IN keys($label_map) THEN [$label_map[label]] ELSE [] END)
"""
_Q_NODES_DELETE_ORPHANS = """
UNWIND $rows AS key
MATCH (s:Span {key: key})
WHERE NOT EXISTS { (s)-[:MENTIONED_IN]->(:Document) }
DETACH DELETE s
"""
_Q_DOC_DELETE = "MATCH (d:Document {id: $id}) DETACH DELETE d"


class _InjectedFailure(RuntimeError):
    """Raised by the test-only ``_fail_after_batches`` hook (not a transient error: no retry)."""


class _Batcher:
    """Runs one statement over rows in UNWIND batches inside a managed transaction."""

    def __init__(self, tx: neo4j.ManagedTransaction, batch_size: int, fail_after_batches: int | None) -> None:
        self.tx = tx
        self.batch_size = batch_size
        self.fail_after_batches = fail_after_batches
        self.batches = 0

    def run(self, query: str, rows: Sequence[Any], **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(rows), self.batch_size):
            result = self.tx.run(query, params, rows=list(rows[start : start + self.batch_size]))
            out.extend(record.data() for record in result)
            self.batches += 1
            if self.fail_after_batches is not None and self.batches >= self.fail_after_batches:
                raise _InjectedFailure(f"injected failure after {self.batches} batches (test hook)")
        return out


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _apply_labels(tx: neo4j.ManagedTransaction, labels: dict[str, str], batcher: _Batcher) -> None:
    """Write relation labels that differ from the stored ones (so an unchanged rerun writes nothing)."""
    if not labels:
        return
    stored = {r["id"]: r["label"] for r in tx.run(_Q_LABELS_READ, ids=sorted(labels)).data()}
    changed = [{"id": k, "label": v} for k, v in sorted(labels.items()) if stored.get(k) != v]
    if changed:
        batcher.run(_Q_LABELS_WRITE, changed)
        tx.run(_Q_RELABEL, ids=[c["id"] for c in changed], labels={c["id"]: c["label"] for c in changed}).consume()


def _remove_contribution(tx: neo4j.ManagedTransaction, doc_id: str) -> tuple[set[str], set[tuple[str, str, str]]]:
    """Delete a document's mentions, evidence and sentences; return the span keys and triples it touched."""
    keys = {r["key"] for r in tx.run(_Q_OLD_MENTIONS, id=doc_id)}
    pairs = {(r["s"], r["o"], r["t"]) for r in tx.run(_Q_OLD_EVIDENCE, id=doc_id)}
    tx.run(_Q_OLD_SENTENCES, id=doc_id).consume()
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
    per_pair: dict[tuple[str, str, str], list[tuple[str, list[float]]]] = {}
    for r in batcher.run(_Q_PAIRS_READ, pair_rows):
        per_pair.setdefault((r["s"], r["o"], r["t"]), []).append((r["doc"], r["scores"]))
    gone = [p for p in pair_rows if (p["s"], p["o"], p["t"]) not in per_pair]
    if gone:
        batcher.run(_Q_RELATES_DELETE, gone)
    updates = [_edge_aggregate(s, o, t, per_pair[(s, o, t)]) for s, o, t in sorted(per_pair)]
    if updates:
        batcher.run(_Q_RELATES_WRITE, updates)

    key_list = sorted(set(keys))
    candidates = key_list if orphan_candidates is None else sorted(set(orphan_candidates))
    if candidates:
        batcher.run(_Q_NODES_DELETE_ORPHANS, candidates)
    batcher.run(_Q_NODES_RECOMPUTE, key_list, entity_labels=_ALL_ENTITY_NODE_LABELS, label_map=ENTITY_LABELS)


def _upsert_tx(
    tx: neo4j.ManagedTransaction,
    rows: _DocRows,
    labels: dict[str, str],
    batch_size: int,
    fail_after_batches: int | None,
) -> UpsertResult:
    """One document, one transaction. Idempotent: the driver may call it again after a transient error."""
    batcher = _Batcher(tx, batch_size, fail_after_batches)
    state = tx.run(_Q_DOC_STATE, id=rows.doc_id).single(strict=True)
    old_hash = state["content_hash"]
    _apply_labels(tx, labels, batcher)
    if old_hash == rows.content_hash:
        return "unchanged"
    old_keys: set[str] = set()
    old_pairs: set[tuple[str, str, str]] = set()
    if old_hash is not None:
        old_keys, old_pairs = _remove_contribution(tx, rows.doc_id)
    seq = int(state["top"][0]) + 1 if state["top"] else 0  # a replaced document counts as ingested anew

    # Nodes first, then the relationships between them, then the aggregates.
    tx.run(
        _Q_DOC_WRITE,
        id=rows.doc_id,
        content_hash=rows.content_hash,
        source=rows.source,
        settings=json.dumps(rows.settings, sort_keys=True, ensure_ascii=False),
        seq=seq,
    ).consume()
    span_rows = []
    for key in sorted(rows.mentions):  # sorted: writers lock shared spans in one order (fewer deadlocks)
        agg = _node_aggregate(key, [_mention_contrib(rows.doc_id, seq, rows.mentions[key])])
        span_rows.append([key, agg["text"], agg["label"], agg["kind"], agg["mentions"], agg["extra_labels"]])
    matched = {r["key"] for r in batcher.run(_Q_SPANS, span_rows, id=rows.doc_id)}  # spans that existed before
    batcher.run(_Q_SENTENCES, [{"index": i, "text": t} for i, t in sorted(rows.sentences.items())], id=rows.doc_id)
    mention_rows = [
        [
            k,
            m.count,
            m.position,
            m.starts,
            m.ends,
            m.sentences,
            list(m.texts),
            list(m.texts.values()),
            list(m.labels),
            list(m.labels.values()),
            list(m.kinds),
            list(m.kinds.values()),
        ]
        for k, m in rows.mentions.items()
    ]
    batcher.run(_Q_MENTIONS, mention_rows, id=rows.doc_id)
    evidence_rows = []
    for (s, o, t), items in rows.evidence.items():
        scores = [ev.score for ev in items]
        # the exact (rational) mean, so a RELATES fed by this document alone needs no recompute
        mean = _edge_aggregate(s, o, t, [(rows.doc_id, scores)])["score_mean"]
        evidence_rows.append(
            [
                s,
                o,
                t,
                mean,
                scores,
                [ev.sentence for ev in items],
                [ev.source_start for ev in items],
                [ev.source_end for ev in items],
                [ev.target_start for ev in items],
                [ev.target_end for ev in items],
            ]
        )
    shared = {(r["s"], r["o"], r["t"]) for r in batcher.run(_Q_EVIDENCE, evidence_rows, id=rows.doc_id)}
    # Recompute what other documents share or what the old version touched; the rest is final already
    # (a triple only this document supports got its RELATES in _Q_EVIDENCE, a span it alone mentions
    # its properties in _Q_SPANS).
    _recompute(
        batcher,
        old_keys | matched,
        (old_pairs - set(rows.evidence)) | shared,
        orphan_candidates=old_keys - set(rows.mentions),
    )
    return "added" if old_hash is None else "replaced"


def _delete_tx(tx: neo4j.ManagedTransaction, doc_id: str, batch_size: int) -> bool:
    if tx.run(_Q_DOC_HASH, id=doc_id).single(strict=True)["content_hash"] is None:
        return False
    keys, pairs = _remove_contribution(tx, doc_id)
    tx.run(_Q_DOC_DELETE, id=doc_id).consume()
    _recompute(_Batcher(tx, batch_size, None), keys, pairs)
    return True


# ── public upsert API ────────────────────────────────────────────────────────────────────────────


def _write_rows(
    session: neo4j.Session,
    rows: _DocRows,
    labels: dict[str, str],
    batch_size: int,
    fail_after_batches: int | None = None,
) -> UpsertResult:
    return session.execute_write(_upsert_tx, rows, labels, batch_size, fail_after_batches)


def upsert_document(
    driver: neo4j.Driver,
    database: str,
    analysis: DocumentAnalysis,
    relation_labels: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    _fail_after_batches: int | None = None,
) -> UpsertResult:
    """Write one document's analysis in ONE managed transaction (all of it, or nothing).

    Returns "unchanged" when a document with this id and content hash is stored (nothing is written,
    except relation labels that differ from the stored ones), "replaced" when it is stored with another
    hash (its old mentions, evidence and sentences are removed, aggregates recomputed and spans and
    edges nobody supports any more deleted), else "added".

    Raises:
        ValueError: a relation type, entity label or span kind outside the whitelists, or an analysis
            that breaks its contract (index out of range, non-finite score). Nothing is written.
    """
    _check_batch_size(batch_size)
    labels = _check_relation_labels(relation_labels)
    rows = _rows_from_analysis(analysis)
    _ensure_schema_once(driver, database)
    with _session(driver, database) as session:
        return _write_rows(session, rows, labels, batch_size, _fail_after_batches)


def upsert_analyses(
    driver: neo4j.Driver,
    database: str,
    analyses: Iterable[DocumentAnalysis],
    relation_labels: dict[str, str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_result: Callable[[DocumentAnalysis, UpsertResult], None] | None = None,
) -> dict[str, int]:
    """``upsert_document`` for each analysis (one transaction per document), streaming.

    Each document is validated just before it is written, so a bad one raises ValueError after the
    documents before it were committed (each document is atomic, the batch is not). Returns
    {"added": n, "unchanged": n, "replaced": n}.
    """
    _check_batch_size(batch_size)
    labels = _check_relation_labels(relation_labels)
    _ensure_schema_once(driver, database)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    with _session(driver, database) as session:
        for analysis in analyses:
            result = _write_rows(session, _rows_from_analysis(analysis), labels, batch_size)
            labels = {}  # written (or found equal) with the first document
            counts[result] += 1
            if on_result is not None:
                on_result(analysis, result)
    if labels:  # no document at all: still store the labels
        set_relation_labels(driver, database, labels)
    return counts


def set_relation_labels(driver: neo4j.Driver, database: str, relation_labels: dict[str, str]) -> None:
    """Store human labels for relation ids and relabel their RELATES edges (only changed ones are written)."""
    labels = _check_relation_labels(relation_labels)
    _ensure_schema_once(driver, database)

    def work(tx: neo4j.ManagedTransaction) -> None:
        _apply_labels(tx, labels, _Batcher(tx, DEFAULT_BATCH_SIZE, None))

    with _session(driver, database) as session:
        session.execute_write(work)


def delete_document(driver: neo4j.Driver, database: str, doc_id: str, batch_size: int = DEFAULT_BATCH_SIZE) -> bool:
    """Remove a document and everything only it supported (one transaction). False if it was not stored."""
    _check_batch_size(batch_size)
    _ensure_schema_once(driver, database)
    with _session(driver, database) as session:
        return session.execute_write(_delete_tx, doc_id, batch_size)


def upsert_graph(driver: neo4j.Driver, database: str, kg: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, int]:
    """Write a ``KnowledgeGraph``: each of its documents, in its ingest order, as by ``upsert_document``.

    The graph must carry per-document contributions (built by ingest, or loaded from node-link JSON or
    GraphML written with provenance). KnowledgeGraph does not keep mention offsets, so MENTIONED_IN
    ``starts``/``ends``/``sentences`` are empty lists for documents written this way, and ``source`` is "".
    """
    from pipeline.graph import ProvenanceUnavailableError

    _check_batch_size(batch_size)
    provenance = kg._provenance()
    if provenance is None:
        raise ProvenanceUnavailableError(
            "this KnowledgeGraph has no per-document contributions (loaded from an export without "
            "provenance), so it cannot be written document by document"
        )
    labels = _check_relation_labels(kg.relation_labels)
    rows = [_rows_from_contribution(item) for item in provenance["contributions"]]  # validate all first
    _ensure_schema_once(driver, database)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    with _session(driver, database) as session:
        for r in rows:
            counts[_write_rows(session, r, labels, batch_size)] += 1
            labels = {}
    if labels:
        set_relation_labels(driver, database, labels)
    return counts


# ── read back ────────────────────────────────────────────────────────────────────────────────────

_Q_READ_DOCS = (
    "MATCH (d:Document) RETURN d.id AS id, d.content_hash AS content_hash, d.seq AS seq, d.settings AS settings"
)
_Q_READ_MENTIONS = """
MATCH (s:Span)-[m:MENTIONED_IN]->(d:Document)
RETURN d.id AS doc, s.key AS key, m.position AS position, m.count AS count,
       m.text_values AS text_values, m.text_counts AS text_counts,
       m.label_values AS label_values, m.label_counts AS label_counts,
       m.kind_values AS kind_values, m.kind_counts AS kind_counts
"""
_Q_READ_EVIDENCE = """
MATCH (a:Span)-[e:EVIDENCE]->(b:Span)
RETURN e.doc_id AS doc, a.key AS s, b.key AS o, e.type AS t, e.scores AS scores, e.sentences AS sentences,
       e.source_starts AS source_starts, e.source_ends AS source_ends,
       e.target_starts AS target_starts, e.target_ends AS target_ends
"""
_Q_READ_SENTENCES = "MATCH (s:Sentence) RETURN s.doc_id AS doc, s.index AS index, s.text AS text"
_Q_READ_RELATION_TYPES = "MATCH (t:RelationType) RETURN t.id AS id, t.label AS label"


def _read(driver: neo4j.Driver, database: str, query: str, **params: Any) -> list[dict[str, Any]]:
    def work(tx: neo4j.ManagedTransaction) -> list[dict[str, Any]]:
        return [record.data() for record in tx.run(query, params)]

    with _session(driver, database) as session:
        return session.execute_read(work)


def read_provenance(driver: neo4j.Driver, database: str) -> dict[str, Any]:
    """The stored per-document data in ``pipeline.graph``'s provenance format (contributions in ingest order)."""
    from pipeline.graph import PROVENANCE_FORMAT

    docs = sorted(_read(driver, database, _Q_READ_DOCS), key=lambda d: (d["seq"], d["id"]))
    nodes: dict[str, list[dict[str, Any]]] = {}
    for m in sorted(_read(driver, database, _Q_READ_MENTIONS), key=lambda m: (m["doc"], m["position"], m["key"])):
        nodes.setdefault(m["doc"], []).append(
            {
                "node": m["key"],
                "mentions": m["count"],
                "texts": [list(p) for p in zip(m["text_values"], m["text_counts"])],
                "labels": [list(p) for p in zip(m["label_values"], m["label_counts"])],
                "kinds": [list(p) for p in zip(m["kind_values"], m["kind_counts"])],
            }
        )
    evidence: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(_read(driver, database, _Q_READ_EVIDENCE), key=lambda e: (e["doc"], e["s"], e["o"], e["t"])):
        items = evidence.setdefault(e["doc"], [])
        for i, score in enumerate(e["scores"]):
            items.append(
                {
                    "source": e["s"],
                    "target": e["o"],
                    "relation": e["t"],
                    "sentence_index": e["sentences"][i],
                    "source_start": e["source_starts"][i],
                    "source_end": e["source_ends"][i],
                    "target_start": e["target_starts"][i],
                    "target_end": e["target_ends"][i],
                    "score": score,
                }
            )
    sentences: dict[str, list[list[Any]]] = {}
    for s in sorted(_read(driver, database, _Q_READ_SENTENCES), key=lambda s: (s["doc"], s["index"])):
        sentences.setdefault(s["doc"], []).append([s["index"], s["text"]])
    contributions = [
        {
            "document": d["id"],
            "content_hash": d["content_hash"],
            "settings": json.loads(d["settings"] or "{}"),
            "nodes": nodes.get(d["id"], []),
            "evidence": evidence.get(d["id"], []),
            "sentences": sentences.get(d["id"], []),
        }
        for d in docs
    ]
    return {"format": PROVENANCE_FORMAT, "contributions": contributions}


def read_relation_labels(driver: neo4j.Driver, database: str) -> dict[str, str]:
    return {r["id"]: r["label"] for r in _read(driver, database, _Q_READ_RELATION_TYPES) if r["label"] is not None}


def read_graph(driver: neo4j.Driver, database: str, max_evidence: int = 5) -> Any:
    """Read the database back into a ``KnowledgeGraph`` (same node/edge attributes, still updatable).

    The graph is rebuilt from the per-document rows with KnowledgeGraph's own aggregation, so it is
    exactly the graph that ingesting the same documents in the same order would give.
    """
    from pipeline.graph import KnowledgeGraph

    provenance = read_provenance(driver, database)
    graph = nx.MultiDiGraph()
    graph.graph["relation_labels"] = read_relation_labels(driver, database)
    graph.graph["max_evidence"] = max_evidence
    contributions = provenance["contributions"]
    graph.graph["settings"] = dict(contributions[-1]["settings"]) if contributions else {}
    # KnowledgeGraph rebuilds every attribute from the contributions (the same path as from_node_link).
    return KnowledgeGraph._restore(graph, provenance)


# ── named queries (queries/*.cypher) ─────────────────────────────────────────────────────────────


def query_names() -> list[str]:
    """Names of the queries in queries/ (file names without .cypher)."""
    return sorted(p.stem for p in QUERIES_DIR.glob("*.cypher"))


def load_query(name: str) -> str:
    """The Cypher of queries/NAME.cypher without its comment lines. ValueError for an unknown name."""
    if not isinstance(name, str) or not _QUERY_NAME_RE.fullmatch(name) or name not in query_names():
        raise ValueError(f"unknown query {name!r} (known: {', '.join(query_names())})")
    lines = (QUERIES_DIR / f"{name}.cypher").read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("//")).strip()


def run_named_query(driver: neo4j.Driver, database: str, name: str, **params: Any) -> list[dict[str, Any]]:
    """Run queries/NAME.cypher (read-only) with ``params`` and return its rows as dicts."""
    return _read(driver, database, load_query(name), **params)


# ── what the store holds ─────────────────────────────────────────────────────────────────────────

_Q_DOC_HASHES = "UNWIND $ids AS id MATCH (d:Document {id: id}) RETURN d.id AS id, d.content_hash AS content_hash"


def document_hashes(driver: neo4j.Driver, database: str, ids: Sequence[str]) -> dict[str, str]:
    """Content hash of each of these documents that the store holds (absent ids are left out)."""
    if not ids:
        return {}
    rows = _read(driver, database, _Q_DOC_HASHES, ids=list(ids))
    return {r["id"]: r["content_hash"] for r in rows}
