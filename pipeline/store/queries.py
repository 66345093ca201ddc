"""Every Cypher statement of the store, as named constants (and nothing else).

The saved queries for Neo4j Browser are the other Cypher of the project (``pipeline/store/cypher/``,
run by ``pipeline.store.named``). Every value travels as a parameter; labels and relationship types
only ever come in as whitelisted parameters through Cypher's dynamic ``$(...)`` label and type syntax
(see ``pipeline.store.schema``: ``span_node_labels``, ``relationship_type``).

The aggregate edge of a (source, target, relation) triple has the relationship type
``relationship_type(relation)``: ``NSUBJ``, ``OBJ``, ``NMOD_POSS``... for typed relations, ``RELATES``
for untyped subspace ids; its ``type`` property is the relation itself either way. Statements on
these edges take the type per row (``[r:$(row.rt)]``). Neo4j 5.26 plans a dynamic type as a filter:
between two bound nodes that is an ``Expand(Into)`` over the relationships between them plus a type
filter (still the cost of their degree), elsewhere a scan of all relationships, so every such
statement binds both endpoints first, or is a rare one-pass statement (``RELABEL_TYPED``).

Facts have the fixed relationship types ``FACT`` (the aggregate of a (subject, object, predicate)
fact, ``predicate`` a property) and ``FACT_EVIDENCE`` (one per document and fact, the source of
truth). A predicate is document text, so it only ever travels as a parameter value, never as a type.
"""

from __future__ import annotations

# ── connection ───────────────────────────────────────────────────────────────────────────────────

# verify_connectivity does not open the database; this trivial read does, and names a missing one.
CONNECTIVITY_CHECK = "RETURN 1"
SERVER_INFO = "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition"
# CALL ... IN TRANSACTIONS needs an auto-commit transaction (session.run). Relationships go first:
# a DETACH DELETE of 10,000 hub nodes would delete all their relationships in one transaction.
CLEAR_RELATIONSHIPS = "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS"
CLEAR_NODES = "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"

# ── schema ───────────────────────────────────────────────────────────────────────────────────────

# Community edition has uniqueness constraints (each backed by a range index) and plain indexes.
# Deliberately NO index on RELATES.type (nor on the typed types' type): the planner would use it for
# MERGE (a)-[:RELATES {type}]->(b) and scan every edge of that type per merged row (quadratic; see
# docs/neo4j.md), where expanding between the two already-bound span nodes costs only their degree.
SCHEMA_STATEMENTS: tuple[str, ...] = (
    "CREATE CONSTRAINT qkgraph_document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT qkgraph_span_key IF NOT EXISTS FOR (s:Span) REQUIRE s.key IS UNIQUE",
    "CREATE CONSTRAINT qkgraph_sentence_id IF NOT EXISTS FOR (s:Sentence) REQUIRE (s.doc_id, s.index) IS UNIQUE",
    "CREATE CONSTRAINT qkgraph_relation_type_id IF NOT EXISTS FOR (t:RelationType) REQUIRE t.id IS UNIQUE",
    "CREATE INDEX qkgraph_evidence_doc IF NOT EXISTS FOR ()-[e:EVIDENCE]-() ON (e.doc_id)",
    # Likewise deliberately NO index on FACT.predicate (MERGE of a FACT between two bound spans must
    # expand between them, not scan every fact with a common predicate such as "be").
    "CREATE INDEX qkgraph_fact_evidence_doc IF NOT EXISTS FOR ()-[e:FACT_EVIDENCE]-() ON (e.doc_id)",
    "CREATE INDEX qkgraph_document_seq IF NOT EXISTS FOR (d:Document) ON (d.seq)",
    "CREATE INDEX qkgraph_span_text IF NOT EXISTS FOR (s:Span) ON (s.text)",
)
AWAIT_INDEXES = "CALL db.awaitIndexes(300)"

# ── document upsert and delete ───────────────────────────────────────────────────────────────────

# Every write statement sent in UNWIND batches ends in RETURN count(*) AS rows. Neo4j runs a
# statement with no result while it answers the RUN message, and the driver's run() waits for that
# answer, so the client could not build and send batch k+1 while the server ran batch k: each batch
# was client then server, with the server idle about 60% of the statement phase (JFR,
# docs/neo4j.md). With a result the work moves to the PULL that follows, and the batches pipeline.
# ROW_COUNTED: the statements whose every row must match its nodes and write exactly one row; the
# store checks their counts before it commits (pipeline.store.upsert._Batcher.check_counts).
ROW_COUNTED = frozenset({"SENTENCES", "MENTIONS", "EVIDENCE", "RELATES_CREATE", "FACT_EVIDENCE", "FACTS_CREATE"})

DOC_HASH = "OPTIONAL MATCH (d:Document {id: $id}) RETURN d.content_hash AS content_hash"
DOC_VERSIONS = """
UNWIND $ids AS id MATCH (d:Document {id: id})
RETURN d.id AS id, d.content_hash AS content_hash, d.settings AS settings
"""
# The stored hashes of a batch's documents and the highest ingest number, in one round trip (the seq
# index serves the ORDER BY).
DOC_STATES = """
WITH COLLECT { MATCH (x:Document) WHERE x.seq IS NOT NULL RETURN x.seq ORDER BY x.seq DESC LIMIT 1 } AS top
UNWIND $ids AS id
OPTIONAL MATCH (d:Document {id: id})
RETURN id, d.content_hash AS content_hash, d.settings AS settings, top
"""
LABELS_READ = "UNWIND $ids AS id OPTIONAL MATCH (t:RelationType {id: id}) RETURN id, t.label AS label"
LABELS_WRITE = """
UNWIND $rows AS row
MERGE (t:RelationType {id: row.id})
SET t.label = row.label
RETURN count(*) AS rows
"""
# One pass over RELATES (there is no index on its type, see SCHEMA_STATEMENTS); $labels: the edge
# labels (pipeline.graph.provenance.relation_label) of the untyped subspace ids in $ids.
RELABEL = "MATCH ()-[r:RELATES]->() WHERE r.type IN $ids SET r.label = $labels[r.type]"
# The same for typed relations (UD names in $ids): one pass over all relationships, since a dynamic
# type would be a scan per row (relabelling is rare: only when stored labels change).
RELABEL_TYPED = (
    "MATCH ()-[r]->() WHERE r.type IN $ids AND NOT r:EVIDENCE AND NOT r:FACT AND NOT r:FACT_EVIDENCE "
    "SET r.label = $labels[r.type]"
)
# The old contribution of the documents being replaced (or deleted), by document id.
OLD_MENTIONS = """
UNWIND $ids AS id
MATCH (s:Span)-[m:MENTIONED_IN]->(:Document {id: id})
DELETE m
RETURN DISTINCT s.key AS key
"""
OLD_EVIDENCE = """
UNWIND $ids AS id
MATCH (a:Span)-[e:EVIDENCE {doc_id: id}]->(b:Span)
WITH a.key AS s, b.key AS o, e.type AS t, e
DELETE e
RETURN DISTINCT s, o, t
"""
OLD_FACT_EVIDENCE = """
UNWIND $ids AS id
MATCH (a:Span)-[e:FACT_EVIDENCE {doc_id: id}]->(b:Span)
WITH a.key AS s, b.key AS o, e.predicate AS p, e
DELETE e
RETURN DISTINCT s, o, p
"""
OLD_SENTENCES = "UNWIND $ids AS id MATCH (s:Sentence {doc_id: id}) DETACH DELETE s"
# row: {id, content_hash, source, settings, seq}
DOCS_WRITE = """
UNWIND $rows AS row
MERGE (d:Document {id: row.id})
SET d.content_hash = row.content_hash, d.source = row.source, d.settings = row.settings, d.seq = row.seq,
    d.ingested_at = datetime()
"""
# Rows of the big statements are positional lists, not maps: fewer values for the driver to pack.
# The batch's old sentences were deleted above (or never existed), so CREATE is exact.
# row: [doc id, index, text]
SENTENCES = """
UNWIND $rows AS row
MATCH (d:Document {id: row[0]})
CREATE (s:Sentence {doc_id: row[0], index: row[1]})-[:PART_OF]->(d)
SET s.text = row[2]
RETURN count(*) AS rows
"""
# MERGE each span the batch mentions (one row per key, sorted); a span this transaction creates is
# mentioned by this batch's documents only, so it gets its final properties (aggregated over the batch
# in Python) here and needs no recompute. ON MATCH SET takes the node's write lock, so writers touching
# the same spans serialize and each recompute reads committed, complete data.
# row: [key, text, label, kind, mentions, documents, extra_labels (schema.span_node_labels)]
SPANS = """
UNWIND $rows AS row
MERGE (s:Span {key: row[0]})
ON CREATE SET s.mentions = 0
ON MATCH SET s.mentions = s.mentions
WITH s, row, s.mentions = 0 AS created
CALL (s, row, created) {
  WITH s, row WHERE created
  SET s.text = row[1], s.label = row[2], s.kind = row[3], s.mentions = row[4], s.documents = row[5]
  SET s:$(row[6])
}
WITH row, created WHERE NOT created
RETURN row[0] AS key
"""
# The batch's own relationships were deleted above (or never existed), so CREATE is exact here
# and avoids MERGE's scan of every relationship between the two nodes.
# row: [doc id, key, count, position, starts, ends, sentences, text_values, text_counts, label_values,
#       label_counts, kind_values, kind_counts]
MENTIONS = """
UNWIND $rows AS row
MATCH (d:Document {id: row[0]})
MATCH (s:Span {key: row[1]})
CREATE (s)-[m:MENTIONED_IN]->(d)
SET m.count = row[2], m.position = row[3], m.starts = row[4], m.ends = row[5], m.sentences = row[6],
    m.text_values = row[7], m.text_counts = row[8], m.label_values = row[9], m.label_counts = row[10],
    m.kind_values = row[11], m.kind_counts = row[12]
RETURN count(*) AS rows
"""
# row: [doc id, source key, target key, type, score_mean (exact), scores, sentences, source_starts,
#       source_ends, target_starts, target_ends, units], items best first (unit: the best item's)
EVIDENCE = """
UNWIND $rows AS row
MATCH (a:Span {key: row[1]})
MATCH (b:Span {key: row[2]})
CREATE (a)-[e:EVIDENCE]->(b)
SET e.type = row[3], e.doc_id = row[0], e.count = size(row[5]), e.score_max = row[5][0],
    e.score_sum = reduce(total = 0.0, x IN row[5] | total + x), e.score_mean = row[4], e.scores = row[5],
    e.sentences = row[6], e.source_starts = row[7], e.source_ends = row[8], e.target_starts = row[9],
    e.target_ends = row[10], e.unit = row[11][0], e.units = row[11]
RETURN count(*) AS rows
"""
# The aggregate edge (RELATES, or a typed type such as OBJ) of every triple the batch supports,
# aggregated over the batch in Python. An aggregate edge this MERGE creates had no support outside the
# batch (it exists exactly when evidence does; the triples of replaced documents are recomputed
# anyway), so its properties are final; the triples it finds are returned and recomputed from all
# their evidence. One row per triple: no per-row COUNT {} of the evidence.
# row: [source key, target key, type, count, score_max, score_mean, documents, unit,
#       relationship type (schema.relationship_type), label if no RelationType labels it]
# The label: the RelationType's if non-empty, else row[9] (the name of a typed relation, else ''),
# as pipeline.graph.provenance.relation_label.
# RELATES_CREATE: triples with an endpoint this transaction created (no edge can exist yet, so
# CREATE is exact and skips MERGE's expansion over the other endpoint's edges); RELATES_NEW: the rest.
RELATES_CREATE = """
UNWIND $rows AS row
MATCH (a:Span {key: row[0]})
MATCH (b:Span {key: row[1]})
OPTIONAL MATCH (t:RelationType {id: row[2]})
CREATE (a)-[r:$(row[8]) {type: row[2]}]->(b)
SET r.label = CASE WHEN coalesce(t.label, '') = '' THEN row[9] ELSE t.label END, r.unit = row[7],
    r.count = row[3], r.score_max = row[4], r.score_mean = row[5], r.documents = row[6]
RETURN count(*) AS rows
"""
RELATES_NEW = """
UNWIND $rows AS row
MATCH (a:Span {key: row[0]})
MATCH (b:Span {key: row[1]})
MERGE (a)-[r:$(row[8]) {type: row[2]}]->(b)
ON CREATE SET r.count = -1
WITH r, row, r.count = -1 AS created
CALL (r, row, created) {
  WITH r, row WHERE created
  OPTIONAL MATCH (t:RelationType {id: row[2]})
  SET r.label = CASE WHEN coalesce(t.label, '') = '' THEN row[9] ELSE t.label END, r.unit = row[7],
      r.count = row[3], r.score_max = row[4], r.score_mean = row[5], r.documents = row[6]
}
WITH row, created WHERE NOT created
RETURN row[0] AS s, row[1] AS o, row[2] AS t
"""

# Every document's evidence for the triples: all scores, and the best item (items are stored best
# first) for the triple's best-of-all and its unit. Evidence stored before units existed has none: ''.
PAIRS_READ = """
UNWIND $rows AS p
MATCH (a:Span {key: p.s})-[e:EVIDENCE {type: p.t}]->(b:Span {key: p.o})
RETURN p.s AS s, p.o AS o, p.t AS t, e.doc_id AS doc, e.scores AS scores,
       [e.sentences[0], e.source_starts[0], e.source_ends[0], e.target_starts[0], e.target_ends[0]] AS first,
       coalesce(e.units[0], '') AS unit
"""
# row: {s, o, t, rt (relationship type), default_label, unit, count, score_max, score_mean, documents}
RELATES_WRITE = """
UNWIND $rows AS row
MATCH (a:Span {key: row.s})
MATCH (b:Span {key: row.o})
OPTIONAL MATCH (t:RelationType {id: row.t})
MERGE (a)-[r:$(row.rt) {type: row.t}]->(b)
SET r.label = CASE WHEN coalesce(t.label, '') = '' THEN row.default_label ELSE t.label END, r.unit = row.unit,
    r.count = row.count, r.score_max = row.score_max, r.score_mean = row.score_mean, r.documents = row.documents
RETURN count(*) AS rows
"""
# row: {s, o, t, rt}
RELATES_DELETE = """
UNWIND $rows AS p
MATCH (a:Span {key: p.s})-[r:$(p.rt) {type: p.t}]->(b:Span {key: p.o})
DELETE r
RETURN count(*) AS rows
"""
# Span properties recomputed on the server from every document's MENTIONED_IN tallies (shipping
# them to Python was the dominant cost for spans that many documents mention). Same rule as
# pipeline.graph.provenance.NodeAggregate: most frequent value over all mentions; ties -> first seen,
# documents in ingest order (seq, then id), values in first-seen order within a document.
# Extra labels come from schema.ENTITY_LABELS and schema.PRONOUN_LABEL only (whitelist) and go in as
# parameters via $(...): $span_labels every one of them, $label_map ENTITY_LABELS, $pronoun_label.
NODES_RECOMPUTE = """
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
REMOVE s:$($span_labels)
SET s:$(CASE WHEN kind = 'entity' AND label IN keys($label_map) THEN [$label_map[label]]
             WHEN kind = 'pronoun' THEN [$pronoun_label] ELSE [] END)
RETURN count(*) AS rows
"""
NODES_DELETE_ORPHANS = """
UNWIND $rows AS key
MATCH (s:Span {key: key})
WHERE NOT EXISTS { (s)-[:MENTIONED_IN]->(:Document) }
DETACH DELETE s
RETURN count(*) AS rows
"""

# ── facts ────────────────────────────────────────────────────────────────────────────────────────

# One FACT_EVIDENCE per (document, subject, object, predicate), items best first; the items' arcs are
# flattened into parallel lists, ``arc_items[i]`` naming the item arc i belongs to (properties cannot
# nest lists). The batch's own fact evidence was deleted above (or never existed): CREATE is exact.
# row: {doc, s, o, p, probability_mean (exact), probabilities, sentences, subject_starts, subject_ends,
#       object_starts, object_ends, predicate_starts, predicate_ends, kinds, arc_items, arc_relations,
#       arc_units, arc_probabilities, arc_head_starts, arc_head_ends, arc_dependent_starts,
#       arc_dependent_ends, arc_heads, arc_dependents}
FACT_EVIDENCE = """
UNWIND $rows AS row
MATCH (a:Span {key: row.s})
MATCH (b:Span {key: row.o})
CREATE (a)-[e:FACT_EVIDENCE]->(b)
SET e.predicate = row.p, e.doc_id = row.doc, e.count = size(row.probabilities),
    e.probability_max = row.probabilities[0], e.probability_mean = row.probability_mean,
    e.probabilities = row.probabilities, e.sentences = row.sentences,
    e.subject_starts = row.subject_starts, e.subject_ends = row.subject_ends,
    e.object_starts = row.object_starts, e.object_ends = row.object_ends,
    e.predicate_starts = row.predicate_starts, e.predicate_ends = row.predicate_ends, e.kinds = row.kinds,
    e.arc_items = row.arc_items, e.arc_relations = row.arc_relations, e.arc_units = row.arc_units,
    e.arc_probabilities = row.arc_probabilities, e.arc_head_starts = row.arc_head_starts,
    e.arc_head_ends = row.arc_head_ends, e.arc_dependent_starts = row.arc_dependent_starts,
    e.arc_dependent_ends = row.arc_dependent_ends, e.arc_heads = row.arc_heads, e.arc_dependents = row.arc_dependents
RETURN count(*) AS rows
"""
# The FACT of every fact the batch supports, aggregated over the batch in Python, as RELATES_CREATE /
# RELATES_NEW do for relations: FACTS_CREATE for facts with an endpoint this transaction created (no
# FACT can exist yet), FACTS_NEW for the rest, returning the facts that existed (to be recomputed).
# row: {s, o, p, fact_kind, units, count, probability_max, probability_mean, documents}
FACTS_CREATE = """
UNWIND $rows AS row
MATCH (a:Span {key: row.s})
MATCH (b:Span {key: row.o})
CREATE (a)-[f:FACT {predicate: row.p}]->(b)
SET f.fact_kind = row.fact_kind, f.units = row.units, f.count = row.count,
    f.probability_max = row.probability_max, f.probability_mean = row.probability_mean, f.documents = row.documents
RETURN count(*) AS rows
"""
FACTS_NEW = """
UNWIND $rows AS row
MATCH (a:Span {key: row.s})
MATCH (b:Span {key: row.o})
MERGE (a)-[f:FACT {predicate: row.p}]->(b)
ON CREATE SET f.count = -1
WITH f, row, f.count = -1 AS created
CALL (f, row, created) {
  WITH f, row WHERE created
  SET f.fact_kind = row.fact_kind, f.units = row.units, f.count = row.count,
      f.probability_max = row.probability_max, f.probability_mean = row.probability_mean, f.documents = row.documents
}
WITH row, created WHERE NOT created
RETURN row.s AS s, row.o AS o, row.p AS p
"""
# Every document's evidence for the facts: all probabilities and kinds, and the best item (items are
# stored best first; its arcs are those with arc_items = 0) for the fact's best of all and its units.
FACT_PAIRS_READ = """
UNWIND $rows AS p
MATCH (a:Span {key: p.s})-[e:FACT_EVIDENCE {predicate: p.p}]->(b:Span {key: p.o})
RETURN p.s AS s, p.o AS o, p.p AS p, e.doc_id AS doc, e.probabilities AS probabilities, e.kinds AS kinds,
       [e.sentences[0], e.subject_starts[0], e.subject_ends[0], e.object_starts[0], e.object_ends[0],
        e.predicate_starts[0], e.predicate_ends[0]] AS first,
       [i IN range(0, size(e.arc_items) - 1) WHERE e.arc_items[i] = 0 |
        [e.arc_relations[i], e.arc_units[i], e.arc_probabilities[i], e.arc_head_starts[i], e.arc_head_ends[i],
         e.arc_dependent_starts[i], e.arc_dependent_ends[i], e.arc_heads[i], e.arc_dependents[i]]] AS first_arcs
"""
# row: {s, o, p, fact_kind, units, count, probability_max, probability_mean, documents}
FACTS_WRITE = """
UNWIND $rows AS row
MATCH (a:Span {key: row.s})
MATCH (b:Span {key: row.o})
MERGE (a)-[f:FACT {predicate: row.p}]->(b)
SET f.fact_kind = row.fact_kind, f.units = row.units, f.count = row.count,
    f.probability_max = row.probability_max, f.probability_mean = row.probability_mean, f.documents = row.documents
RETURN count(*) AS rows
"""
# row: {s, o, p}
FACTS_DELETE = """
UNWIND $rows AS p
MATCH (a:Span {key: p.s})-[f:FACT {predicate: p.p}]->(b:Span {key: p.o})
DELETE f
RETURN count(*) AS rows
"""

DOC_DELETE = "MATCH (d:Document {id: $id}) DETACH DELETE d"


# ── read back ───────────────────────────────────────────────────────────────────────────────────

READ_DOCS = "MATCH (d:Document) RETURN d.id AS id, d.content_hash AS content_hash, d.seq AS seq, d.settings AS settings"
READ_MENTIONS = """
MATCH (s:Span)-[m:MENTIONED_IN]->(d:Document)
RETURN d.id AS doc, s.key AS key, m.position AS position, m.count AS count,
       m.text_values AS text_values, m.text_counts AS text_counts,
       m.label_values AS label_values, m.label_counts AS label_counts,
       m.kind_values AS kind_values, m.kind_counts AS kind_counts
"""
READ_EVIDENCE = """
MATCH (a:Span)-[e:EVIDENCE]->(b:Span)
RETURN e.doc_id AS doc, a.key AS s, b.key AS o, e.type AS t, e.scores AS scores, e.sentences AS sentences,
       e.source_starts AS source_starts, e.source_ends AS source_ends,
       e.target_starts AS target_starts, e.target_ends AS target_ends, e.units AS units
"""
READ_FACT_EVIDENCE = """
MATCH (a:Span)-[e:FACT_EVIDENCE]->(b:Span)
RETURN e.doc_id AS doc, a.key AS s, b.key AS o, e.predicate AS p, e.probabilities AS probabilities,
       e.sentences AS sentences, e.subject_starts AS subject_starts, e.subject_ends AS subject_ends,
       e.object_starts AS object_starts, e.object_ends AS object_ends, e.predicate_starts AS predicate_starts,
       e.predicate_ends AS predicate_ends, e.kinds AS kinds, e.arc_items AS arc_items,
       e.arc_relations AS arc_relations, e.arc_units AS arc_units, e.arc_probabilities AS arc_probabilities,
       e.arc_head_starts AS arc_head_starts, e.arc_head_ends AS arc_head_ends,
       e.arc_dependent_starts AS arc_dependent_starts, e.arc_dependent_ends AS arc_dependent_ends,
       e.arc_heads AS arc_heads, e.arc_dependents AS arc_dependents
"""
READ_SENTENCES = "MATCH (s:Sentence) RETURN s.doc_id AS doc, s.index AS index, s.text AS text"
READ_RELATION_TYPES = "MATCH (t:RelationType) RETURN t.id AS id, t.label AS label"
