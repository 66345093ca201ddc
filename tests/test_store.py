"""pipeline.store on the real embedded Neo4j: schema, per-document upsert, replacement, atomicity,
whitelists and injection, and the NetworkX <-> Neo4j round trip (no mocks)."""

from __future__ import annotations

import gc
import random
import re
from dataclasses import replace
from typing import Any

import pytest
from test_graph import PARIS as PARIS_F
from test_graph import U_NSUBJ_B, fact_doc1, fact_doc2, with_facts

from pipeline import store
from pipeline.graph import KnowledgeGraph
from pipeline.types import DEPENDENCY_RELATIONS, Document, DocumentAnalysis, Span, SpanRelation

MC = "entity:PERSON:marie curie"
PC = "entity:PERSON:pierre curie"
RADIUM = "noun_chunk:radium"
POLONIUM = "noun_chunk:polonium"
MARRIED = "word:marry"
NSUBJ = "L2H8k12"
OTHER = "L0H1k3"

_KINDS = {"entity": "entity", "noun_chunk": "noun_chunk", "word": "word", "pronoun": "pronoun"}

# Typed relations: UD names, head -> dependent, each with the id of its unit.
WON = "word:win"
NOBEL = "noun_chunk:nobel prize in physics"
SHARED = "word:share"
PRIZE = "noun_chunk:prize"
SHE = "pronoun:t1:she"
HER = "pronoun:t1:her"
U_NSUBJ = "qk:nsubj:L2A:H0c0-31"
U_OBJ = "qk:obj:L2A:H0c0-31+H1c1.8"
U_POSS = "qk:nmod:poss:L1A:H3c0-15"


def build(
    doc_id: str,
    sentences: list[str],
    mentions: list[tuple[str, str, int, int]],
    relations: list[tuple[int, int, str, float]] | list[tuple[int, int, str, float, str]],
    settings: dict[str, str | int | float] | None = None,
    source: str = "",
) -> DocumentAnalysis:
    """A hand-made analysis.

    mentions: (node key, surface text, sentence index, occurrence of the text in that sentence);
    relations: (source mention, target mention, relation, score[, unit]), sentence = the source's.
    Label and kind come from the key ("entity:PERSON:..." -> entity, PERSON).
    """
    text = " ".join(sentences)
    bounds: list[tuple[int, int]] = []
    pos = 0
    for sentence in sentences:
        bounds.append((pos, pos + len(sentence)))
        pos += len(sentence) + 1
    spans = []
    for key, surface, sent, occurrence in mentions:
        start, end = bounds[sent]
        at = start - 1
        for _ in range(occurrence + 1):
            at = text.index(surface, at + 1, end)
        parts = key.split(":")
        kind = _KINDS[parts[0]]
        label = parts[1] if kind == "entity" else ""
        spans.append(Span(key, surface, label, kind, sent, at, at + len(surface)))  # type: ignore[arg-type]
    rels = [SpanRelation(s, t, r, score, spans[s].sent_index, *unit) for s, t, r, score, *unit in relations]
    return DocumentAnalysis(
        Document(doc_id, text, source=source or f"{doc_id}.txt"),
        bounds,
        spans,
        rels,
        n_tokens=len(text.split()),
        settings=settings or {},
    )


def doc1() -> DocumentAnalysis:
    return build(
        "d1",
        ["Marie Curie discovered radium.", "Marie Curie studied polonium."],
        [(MC, "Marie Curie", 0, 0), (RADIUM, "radium", 0, 0), (MC, "Marie Curie", 1, 0), (POLONIUM, "polonium", 1, 0)],
        [(0, 1, NSUBJ, 0.8), (2, 3, NSUBJ, 0.6), (0, 1, OTHER, 0.3)],
        settings={"model": "test-model", "top_k": 12},
    )


def doc2() -> DocumentAnalysis:
    return build(
        "d2",
        ["Pierre Curie married Marie Curie.", "Curie discovered radium."],
        [
            (PC, "Pierre Curie", 0, 0),
            (MARRIED, "married", 0, 0),
            (MC, "Marie Curie", 0, 0),
            (MC, "Curie", 1, 0),
            (RADIUM, "radium", 1, 0),
        ],
        [(0, 2, NSUBJ, 0.7), (0, 1, OTHER, 0.55), (3, 4, NSUBJ, 0.4)],
        settings={"model": "test-model", "top_k": 12},
    )


def doc2_changed() -> DocumentAnalysis:
    return build(
        "d2",
        ["Pierre Curie met Marie Curie."],
        [(PC, "Pierre Curie", 0, 0), (MC, "Marie Curie", 0, 0)],
        [(0, 1, NSUBJ, 0.9)],
        settings={"model": "test-model", "top_k": 16},
    )


def typed1() -> DocumentAnalysis:
    """Typed relations (head -> dependent, with units), two pronouns, and one untyped relation."""
    return build(
        "t1",
        ["Marie Curie won the Nobel Prize in Physics.", "She shared her prize."],
        [
            (MC, "Marie Curie", 0, 0),
            (WON, "won", 0, 0),
            (NOBEL, "the Nobel Prize in Physics", 0, 0),
            (SHE, "She", 1, 0),
            (SHARED, "shared", 1, 0),
            (HER, "her", 1, 0),
            (PRIZE, "prize", 1, 0),
        ],
        [
            (1, 0, "nsubj", 0.97, U_NSUBJ),
            (1, 2, "obj", 0.93, U_OBJ),
            (4, 3, "nsubj", 0.88, U_NSUBJ),
            (4, 6, "obj", 0.71, U_OBJ),
            (6, 5, "nmod:poss", 0.66, U_POSS),
            (1, 2, NSUBJ, 0.4),  # an untyped subspace on a typed pair: a RELATES beside the OBJ
        ],
        settings={"model": "test-model", "relation_types": "typed"},
    )


def typed1_changed() -> DocumentAnalysis:
    """t1 again, changed: the second sentence (and with it both pronouns and the prize) is gone."""
    return build(
        "t1",
        ["Marie Curie won the Nobel Prize in Physics."],
        [(MC, "Marie Curie", 0, 0), (WON, "won", 0, 0), (NOBEL, "the Nobel Prize in Physics", 0, 0)],
        [(1, 0, "nsubj", 0.95, U_NSUBJ), (1, 2, "obj", 0.9, U_OBJ)],
        settings={"model": "test-model", "relation_types": "typed"},
    )


def typed2() -> DocumentAnalysis:
    """Another document sharing the won -obj-> Nobel Prize triple."""
    return build(
        "t2",
        ["Pierre Curie won the Nobel Prize in Physics too."],
        [(PC, "Pierre Curie", 0, 0), (WON, "won", 0, 0), (NOBEL, "the Nobel Prize in Physics", 0, 0)],
        [(1, 0, "nsubj", 0.9, U_NSUBJ), (1, 2, "obj", 0.8, U_OBJ)],
        settings={"model": "test-model", "relation_types": "typed"},
    )


def kg_of(*analyses: DocumentAnalysis, relation_labels: dict[str, str] | None = None) -> KnowledgeGraph:
    kg = KnowledgeGraph(relation_labels=relation_labels)
    for a in analyses:
        kg.add_analysis(a)
    return kg


# ── helpers over the database ────────────────────────────────────────────────────────────────────


def q(driver: Any, database: str, query: str, **params: Any) -> list[dict[str, Any]]:
    records, _, _ = driver.execute_query(query, params, database_=database)
    return [r.data() for r in records]


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "iso_format"):  # neo4j.time.DateTime
        return value.iso_format()
    return value


def dump(driver: Any, database: str, *, element_ids: bool = True, skip: frozenset[str] = frozenset()) -> tuple:
    """Every node and relationship with labels/type and all properties, in a canonical order.

    element_ids: include Neo4j's element ids (same database, nothing rewritten -> same ids);
    skip: property names to leave out (e.g. ingested_at and seq when comparing two different histories).
    """
    nodes = q(driver, database, "MATCH (n) RETURN elementId(n) AS id, labels(n) AS labels, properties(n) AS props")
    rels = q(
        driver,
        database,
        "MATCH (a)-[r]->(b) RETURN elementId(r) AS id, type(r) AS type, properties(r) AS props, "
        "elementId(a) AS a, elementId(b) AS b",
    )

    def ident(n: dict[str, Any]) -> tuple:
        p = n["props"]
        return (tuple(sorted(n["labels"])), p.get("key"), p.get("id"), p.get("doc_id"), p.get("index"))

    by_id = {n["id"]: ident(n) for n in nodes}

    def props(p: dict[str, Any]) -> tuple:
        return tuple(sorted((k, repr(_plain(v))) for k, v in p.items() if k not in skip))

    node_rows = sorted((ident(n), props(n["props"]), n["id"] if element_ids else "") for n in nodes)
    rel_rows = sorted(
        (r["type"], by_id[r["a"]], by_id[r["b"]], props(r["props"]), r["id"] if element_ids else "") for r in rels
    )
    return tuple(node_rows), tuple(rel_rows)


HISTORY = frozenset({"ingested_at", "seq"})


def counts(driver: Any, database: str) -> tuple[int, int]:
    n = q(driver, database, "MATCH (n) RETURN count(n) AS n")[0]["n"]
    r = q(driver, database, "MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"]
    return n, r


def assert_matches_kg(driver: Any, database: str, kg: KnowledgeGraph) -> None:
    """The stored aggregates (Span properties, RELATES edges) equal the KnowledgeGraph's attributes."""
    spans = {
        r["key"]: r
        for r in q(driver, database, "MATCH (s:Span) RETURN s.key AS key, properties(s) AS p, labels(s) AS labels")
    }
    assert set(spans) == set(kg.g.nodes)
    for key, attrs in kg.g.nodes(data=True):
        p = spans[key]["p"]
        assert {k: p[k] for k in ("text", "label", "kind", "mentions", "documents")} == {
            k: attrs[k] for k in ("text", "label", "kind", "mentions", "documents")
        }, key
        extra = {
            "entity": {store.ENTITY_LABELS.get(attrs["label"], "")} - {""},
            "pronoun": {store.PRONOUN_LABEL},
        }.get(attrs["kind"], set())
        assert set(spans[key]["labels"]) == {"Span"} | extra
    # Every aggregate edge: RELATES for subspace ids, the relation's own type (OBJ...) for typed ones.
    rows = q(
        driver,
        database,
        "MATCH (a:Span)-[r:!EVIDENCE&!FACT&!FACT_EVIDENCE]->(b:Span) "
        "RETURN a.key AS s, b.key AS o, type(r) AS rt, properties(r) AS p",
    )
    rels = {(r["s"], r["o"], r["p"]["type"]): r for r in rows}
    assert len(rels) == len(rows)  # one aggregate edge per triple
    relation_edges = [(s, o, t, d) for s, o, t, d in kg.g.edges(keys=True, data=True) if d["kind"] == "relation"]
    assert set(rels) == {(s, o, t) for s, o, t, _ in relation_edges}
    # Every FACT: one per (subject, object, predicate), its aggregates bit-identical to the fact edge's.
    fact_rows = q(
        driver, database, "MATCH (a:Span)-[f:FACT]->(b:Span) RETURN a.key AS s, b.key AS o, properties(f) AS p"
    )
    facts = {(r["s"], r["o"], r["p"]["predicate"]): r["p"] for r in fact_rows}
    assert len(facts) == len(fact_rows)
    expected_facts = {(s, o, d["predicate"]): d for s, o, d in kg.g.edges(data=True) if d["kind"] == "fact"}
    assert set(facts) == set(expected_facts)
    for fact, attrs in expected_facts.items():
        assert facts[fact] == {
            k: attrs[k]
            for k in (
                "predicate",
                "fact_kind",
                "units",
                "count",
                "probability_max",
                "probability_mean",
                "documents",
            )
        }, fact
    for s, o, t, attrs in relation_edges:
        assert rels[(s, o, t)]["rt"] == store.relationship_type(t)
        p = rels[(s, o, t)]["p"]
        assert p["unit"] == attrs["unit"]
        assert p["count"] == attrs["count"]
        assert p["score_max"] == attrs["score_max"]
        # Both sides take the correctly rounded mean of an exact rational sum: bit-identical.
        assert p["score_mean"] == attrs["score_mean"]
        assert p["documents"] == attrs["documents"]
        assert p["label"] == attrs["label"]
    docs = {r["id"]: r["h"] for r in q(driver, database, "MATCH (d:Document) RETURN d.id AS id, d.content_hash AS h")}
    assert docs == kg.documents


def assert_same_kg(a: KnowledgeGraph, b: KnowledgeGraph) -> None:
    """Nodes, edges and graph attributes equal (floats to 1e-12, the rest exactly)."""
    assert dict(a.g.nodes(data=True)) == dict(b.g.nodes(data=True))
    ea = {(s, o, k): d for s, o, k, d in a.g.edges(keys=True, data=True)}
    eb = {(s, o, k): d for s, o, k, d in b.g.edges(keys=True, data=True)}
    assert set(ea) == set(eb)
    for edge, da in ea.items():
        db = eb[edge]
        assert set(da) == set(db), edge
        for name in da:
            if name in ("score_max", "score_mean"):
                assert da[name] == pytest.approx(db[name], rel=0, abs=1e-12), (edge, name)
            elif name == "evidence":
                assert len(da[name]) == len(db[name])
                for x, y in zip(da[name], db[name]):
                    assert {k: v for k, v in x.items() if k != "score"} == {k: v for k, v in y.items() if k != "score"}
                    if "score" in x:  # relation evidence (fact evidence compares exactly, above)
                        assert x["score"] == pytest.approx(y["score"], rel=0, abs=1e-12)
            else:
                assert da[name] == db[name], (edge, name)
    assert a.g.graph == b.g.graph
    assert a.documents == b.documents


@pytest.fixture()
def db(neo4j_db, neo4j_settings):
    """(driver, database name) on an emptied database with the schema in place."""
    store.ensure_schema(neo4j_db, neo4j_settings.database)
    return neo4j_db, neo4j_settings.database


# ── schema ───────────────────────────────────────────────────────────────────────────────────────


def test_constraints_and_indexes_exist_after_ensure_schema(db) -> None:
    driver, database = db
    store.ensure_schema(driver, database)  # idempotent
    constraints = {
        (r["type"], tuple(r["labelsOrTypes"]), tuple(r["properties"]))
        for r in q(driver, database, "SHOW CONSTRAINTS YIELD type, labelsOrTypes, properties")
    }
    assert ("UNIQUENESS", ("Document",), ("id",)) in constraints
    assert ("UNIQUENESS", ("Span",), ("key",)) in constraints
    assert ("UNIQUENESS", ("Sentence",), ("doc_id", "index")) in constraints
    assert ("UNIQUENESS", ("RelationType",), ("id",)) in constraints
    indexes = {
        (r["entityType"], tuple(r["labelsOrTypes"] or ()), tuple(r["properties"] or ()), r["state"])
        for r in q(driver, database, "SHOW INDEXES YIELD entityType, labelsOrTypes, properties, state")
    }
    assert ("RELATIONSHIP", ("EVIDENCE",), ("doc_id",), "ONLINE") in indexes
    assert ("NODE", ("Span",), ("text",), "ONLINE") in indexes
    assert ("NODE", ("Document",), ("seq",), "ONLINE") in indexes
    # Deliberately none on RELATES.type: the planner would pick it for MERGE of a RELATES edge.
    assert not any(i[1] == ("RELATES",) for i in indexes)


# ── upsert ───────────────────────────────────────────────────────────────────────────────────────


def test_two_documents_sharing_an_entity_give_one_span_mentioned_in_both(db) -> None:
    driver, database = db
    assert store.upsert_document(driver, database, doc1()) == "added"
    assert store.upsert_document(driver, database, doc2()) == "added"
    rows = q(driver, database, "MATCH (s:Span {key: $k}) RETURN count(s) AS n, labels(s) AS labels", k=MC)
    assert len(rows) == 1 and rows[0]["n"] == 1 and sorted(rows[0]["labels"]) == ["Person", "Span"]
    mentioned = q(
        driver,
        database,
        "MATCH (:Span {key: $k})-[m:MENTIONED_IN]->(d:Document) RETURN d.id AS doc, m.count AS count, "
        "m.starts AS starts, m.ends AS ends, m.text_values AS texts ORDER BY doc",
        k=MC,
    )
    assert mentioned == [
        {"doc": "d1", "count": 2, "starts": [0, 31], "ends": [11, 42], "texts": ["Marie Curie"]},
        {"doc": "d2", "count": 2, "starts": [21, 34], "ends": [32, 39], "texts": ["Marie Curie", "Curie"]},
    ]
    # Non-entity spans carry no second label.
    assert q(driver, database, "MATCH (s:Span {key: $k}) RETURN labels(s) AS l", k=RADIUM) == [{"l": ["Span"]}]
    doc = q(driver, database, "MATCH (d:Document {id: 'd1'}) RETURN properties(d) AS p")[0]["p"]
    assert doc["content_hash"] == doc1().document.content_hash
    assert doc["source"] == "d1.txt"
    assert "ingested_at" in doc


def test_aggregates_are_right_and_equal_the_knowledge_graph(db) -> None:
    driver, database = db
    labels = {NSUBJ: "nsubj"}
    assert store.upsert_analyses(driver, database, [doc1(), doc2()], relation_labels=labels) == {
        "added": 2,
        "unchanged": 0,
        "replaced": 0,
    }
    edge = q(
        driver,
        database,
        "MATCH (:Span {key: $s})-[r:RELATES {type: $t}]->(:Span {key: $o}) RETURN properties(r) AS p",
        s=MC,
        o=RADIUM,
        t=NSUBJ,
    )[0]["p"]
    assert edge["count"] == 2
    assert edge["score_max"] == 0.8
    assert edge["score_mean"] == pytest.approx(0.6)
    assert edge["documents"] == ["d1", "d2"]
    assert edge["label"] == "nsubj"
    mc = q(driver, database, "MATCH (s:Span {key: $k}) RETURN properties(s) AS p", k=MC)[0]["p"]
    assert mc["mentions"] == 4 and mc["text"] == "Marie Curie" and mc["documents"] == ["d1", "d2"]
    evidence = q(
        driver,
        database,
        "MATCH (:Span {key: $s})-[e:EVIDENCE {type: $t}]->(:Span {key: $o}) RETURN e.doc_id AS doc, "
        "e.scores AS scores, e.sentences AS sentences ORDER BY doc",
        s=MC,
        o=RADIUM,
        t=NSUBJ,
    )
    assert evidence == [
        {"doc": "d1", "scores": [0.8], "sentences": [0]},
        {"doc": "d2", "scores": [0.4], "sentences": [1]},
    ]
    assert_matches_kg(driver, database, kg_of(doc1(), doc2(), relation_labels=labels))


def test_the_same_document_again_is_unchanged_and_writes_nothing(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2()], relation_labels={NSUBJ: "nsubj"})
    before = dump(driver, database)
    assert store.upsert_document(driver, database, doc2(), relation_labels={NSUBJ: "nsubj"}) == "unchanged"
    assert store.upsert_analyses(driver, database, [doc1(), doc2()]) == {"added": 0, "unchanged": 2, "replaced": 0}
    assert dump(driver, database) == before  # element ids and ingested_at included


def test_the_same_text_analysed_otherwise_is_replaced_and_not_held(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2()])
    other = replace(doc1(), settings={"model": "test-model", "top_k": 12, "analysis_format": 99})
    ids = [("d1", doc1().document.content_hash), ("d2", doc2().document.content_hash)]
    assert store.held_documents(driver, database, ids) == {"d1", "d2"}
    assert store.held_documents(driver, database, ids, doc1().settings) == {"d1", "d2"}
    assert store.held_documents(driver, database, ids, other.settings) == set()
    assert store.held_documents(driver, database, [("d1", "another hash")]) == set()
    assert store.upsert_document(driver, database, other) == "replaced"
    assert store.upsert_document(driver, database, other) == "unchanged"
    assert store.held_documents(driver, database, ids, other.settings) == {"d1"}
    assert_matches_kg(driver, database, kg_of(doc2(), other))


def test_relation_labels_relabel_existing_edges(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2()])
    store.set_relation_labels(driver, database, {NSUBJ: "nsubj"})
    assert_matches_kg(driver, database, kg_of(doc1(), doc2(), relation_labels={NSUBJ: "nsubj"}))
    # A new label with an unchanged document: the document is untouched, the label is applied.
    assert store.upsert_document(driver, database, doc1(), relation_labels={NSUBJ: "subject"}) == "unchanged"
    assert_matches_kg(driver, database, kg_of(doc1(), doc2(), relation_labels={NSUBJ: "subject"}))
    assert store.read_relation_labels(driver, database) == {NSUBJ: "subject"}


def test_new_edges_take_the_stored_label_when_the_call_passes_none(db) -> None:
    driver, database = db
    store.set_relation_labels(driver, database, {NSUBJ: "nsubj"})  # stored before any document
    store.upsert_document(driver, database, doc1())  # new spans: edges created outright
    store.upsert_document(driver, database, doc2())  # new edges, and one triple of doc1's recomputed
    assert_matches_kg(driver, database, kg_of(doc1(), doc2(), relation_labels={NSUBJ: "nsubj"}))
    labels = q(
        driver,
        database,
        "MATCH ()-[r {type: $t}]->() WHERE type(r) <> 'EVIDENCE' RETURN DISTINCT r.label AS l",
        t=NSUBJ,
    )
    assert labels == [{"l": "nsubj"}]


def test_a_changed_document_is_replaced_not_added(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2()])
    assert store.upsert_document(driver, database, doc2_changed()) == "replaced"

    # Orphans are gone: "married" only appeared in the old d2, and so did its edge and sentence 1.
    assert q(driver, database, "MATCH (s:Span {key: $k}) RETURN s", k=MARRIED) == []
    assert q(driver, database, "MATCH ()-[r {type: $t}]->(:Span {key: $k}) RETURN r", t=OTHER, k=MARRIED) == []
    sentences = q(driver, database, "MATCH (s:Sentence {doc_id: 'd2'}) RETURN s.index AS i, s.text AS t")
    assert sentences == [{"i": 0, "t": "Pierre Curie met Marie Curie."}]
    # Counts corrected, not added: Marie Curie 2 (d1) + 1 (new d2); MC->radium only from d1 now.
    mc = q(driver, database, "MATCH (s:Span {key: $k}) RETURN s.mentions AS m, s.documents AS d", k=MC)
    assert mc == [{"m": 3, "d": ["d1", "d2"]}]
    rel = q(
        driver,
        database,
        "MATCH (:Span {key: $s})-[r:RELATES {type: $t}]->(:Span {key: $o}) RETURN r.count AS c, r.documents AS d, "
        "r.score_max AS mx",
        s=MC,
        o=RADIUM,
        t=NSUBJ,
    )
    assert rel == [{"c": 1, "d": ["d1"], "mx": 0.8}]
    rel = q(
        driver,
        database,
        "MATCH (:Span {key: $s})-[r:RELATES {type: $t}]->(:Span {key: $o}) RETURN r.count AS c, r.score_mean AS m",
        s=PC,
        o=MC,
        t=NSUBJ,
    )
    assert rel == [{"c": 1, "m": 0.9}]
    assert_matches_kg(driver, database, kg_of(doc1(), doc2(), doc2_changed()))

    # And the database is the one a fresh ingest of the current documents gives (history aside).
    replaced = dump(driver, database, element_ids=False, skip=HISTORY)
    store.clear_database(driver, database)
    store.upsert_analyses(driver, database, [doc1(), doc2_changed()])
    assert dump(driver, database, element_ids=False, skip=HISTORY) == replaced


def test_delete_document_removes_only_what_it_supported(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2()])
    assert store.delete_document(driver, database, "d2") is True
    assert store.delete_document(driver, database, "d2") is False
    after = dump(driver, database, element_ids=False, skip=HISTORY)
    store.clear_database(driver, database)
    store.upsert_document(driver, database, doc1())
    assert dump(driver, database, element_ids=False, skip=HISTORY) == after


def test_batch_size_does_not_change_the_result(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2(), doc2_changed()], batch_size=1)
    small = dump(driver, database, element_ids=False, skip=HISTORY)
    store.clear_database(driver, database)
    store.upsert_analyses(driver, database, [doc1(), doc2(), doc2_changed()], batch_size=10_000)
    assert dump(driver, database, element_ids=False, skip=HISTORY) == small
    with pytest.raises(ValueError, match="batch_size"):
        store.upsert_document(driver, database, doc1(), batch_size=0)


# ── safety ───────────────────────────────────────────────────────────────────────────────────────

EVIL_TEXT = '"}) DETACH DELETE n //'
EVIL_ID = "d3 \"quoted\" 'single' `back`tick` }) MATCH (n) DETACH DELETE n //"


def test_injection_attempts_are_stored_verbatim_as_data(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2()])
    n0, r0 = counts(driver, database)
    evil_key = f"entity:ORG:{EVIL_TEXT}"
    analysis = build(
        EVIL_ID,
        [f"The {EVIL_TEXT} met Marie Curie."],
        [(evil_key, EVIL_TEXT, 0, 0), (MC, "Marie Curie", 0, 0)],
        [(0, 1, NSUBJ, 0.5)],
    )
    labels = {OTHER: "`]->() DETACH DELETE n //"}
    assert store.upsert_document(driver, database, analysis, relation_labels=labels) == "added"

    span = q(driver, database, "MATCH (s:Span {key: $k}) RETURN s.text AS t, labels(s) AS l", k=evil_key)
    assert len(span) == 1 and span[0]["t"] == EVIL_TEXT and sorted(span[0]["l"]) == ["Org", "Span"]
    doc = q(driver, database, "MATCH (d:Document {id: $id}) RETURN d.id AS id", id=EVIL_ID)
    assert doc == [{"id": EVIL_ID}]
    assert q(driver, database, "MATCH (t:RelationType {id: $id}) RETURN t.label AS l", id=OTHER) == [
        {"l": labels[OTHER]}
    ]
    # Exactly the new document's own additions: 1 Document + 1 Sentence + 1 new Span + 1 RelationType;
    # 2 MENTIONED_IN + 1 PART_OF + 1 EVIDENCE + 1 RELATES. Nothing else created or deleted.
    assert counts(driver, database) == (n0 + 4, r0 + 5)
    assert_matches_kg(driver, database, kg_of(doc1(), doc2(), analysis, relation_labels=labels))


def test_whitelists_raise_before_anything_is_written(db) -> None:
    driver, database = db
    store.upsert_document(driver, database, doc1())
    before = dump(driver, database)
    bad_type = "L2H8k12]->() DETACH DELETE n //"
    analysis = build(
        "d9",
        ["Marie Curie discovered radium."],
        [(MC, "Marie Curie", 0, 0), (RADIUM, "radium", 0, 0)],
        [(0, 1, bad_type, 0.5)],
    )
    with pytest.raises(ValueError, match=r"relation type 'L2H8k12\]->\(\) DETACH DELETE n //' is not allowed"):
        store.upsert_document(driver, database, analysis)
    with pytest.raises(ValueError, match="RELATES"):
        store.upsert_document(driver, database, doc2(), relation_labels={"RELATES": "x"})
    bad_label = DocumentAnalysis(
        Document("d8", "Aspirin helps."),
        [(0, 14)],
        [Span("entity:DRUG:aspirin", "Aspirin", "DRUG", "entity", 0, 0, 7)],
        [],
    )
    with pytest.raises(ValueError, match="entity label 'DRUG' is not allowed"):
        store.upsert_document(driver, database, bad_label)
    bad_kind = DocumentAnalysis(
        Document("d7", "Aspirin helps."),
        [(0, 14)],
        [Span("x:aspirin", "Aspirin", "", "thing", 0, 0, 7)],
        [],  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match="kind 'thing'"):
        store.upsert_document(driver, database, bad_kind)
    assert dump(driver, database) == before


@pytest.mark.parametrize("relation", ["L2H8k12", "L0H0c3", "L11H3c1-4-7", "L31H31k128"])
def test_relation_type_whitelist_accepts_extractor_ids(relation: str) -> None:
    assert store.check_relation_type(relation) == relation


@pytest.mark.parametrize("relation", ["", "L2H8", "l2h8k12", "L2H8k12 ", "RELATES", "L2H8c", "L2H8c1-", "L2H8k12\n"])
def test_relation_type_whitelist_rejects_the_rest(relation: str) -> None:
    with pytest.raises(ValueError, match="is not allowed"):
        store.check_relation_type(relation)


# ── typed relations ──────────────────────────────────────────────────────────────────────────────


def relationship_counts(driver: Any, database: str) -> dict[str, int]:
    """{relationship type: how many} in the database."""
    rows = q(driver, database, "MATCH ()-[r]->() RETURN type(r) AS t, count(r) AS n")
    return {r["t"]: r["n"] for r in rows}


def test_typed_relations_get_their_own_relationship_type_through_the_sink(db, neo4j_settings) -> None:
    from pipeline.sinks import Neo4jSink

    driver, database = db
    sink = Neo4jSink(neo4j_settings)
    sink.open()
    try:
        assert sink.write([typed1(), typed2()], {}) == ["added", "added"]
        assert sink.held([typed1().document, typed2().document]) == {"t1", "t2"}
        assert sink.held([typed1().document], typed1().settings) == {"t1"}
        assert sink.held([typed1().document], {**typed1().settings, "threshold": 0.99}) == set()
    finally:
        sink.abort()
    kg = kg_of(typed1(), typed2())
    counts_by_type = relationship_counts(driver, database)
    assert {t: n for t, n in counts_by_type.items() if t not in ("MENTIONED_IN", "PART_OF", "EVIDENCE")} == {
        "NSUBJ": 3,  # won -> Marie Curie, shared -> She (t1); won -> Pierre Curie (t2)
        "OBJ": 2,  # won -> the Nobel Prize in Physics (t1, t2), shared -> prize
        "NMOD_POSS": 1,  # prize -> her
        "RELATES": 1,  # the untyped subspace on won -> the Nobel Prize in Physics
    }
    (obj,) = q(
        driver,
        database,
        "MATCH (:Span {key: $h})-[r:OBJ]->(:Span {key: $d}) RETURN properties(r) AS p",
        h=WON,
        d=NOBEL,
    )
    edge = kg.g.edges[WON, NOBEL, "obj"]
    assert obj["p"] == {
        "type": "obj",
        "label": "obj",  # the relation's name: no RelationType labels it
        "unit": U_OBJ,
        "count": 2,
        "score_max": 0.93,
        "score_mean": edge["score_mean"],
        "documents": ["t1", "t2"],
    }
    (relates,) = q(driver, database, "MATCH (:Span {key: $h})-[r:RELATES]->() RETURN properties(r) AS p", h=WON)
    assert (relates["p"]["type"], relates["p"]["label"], relates["p"]["unit"]) == (NSUBJ, "", "")
    evidence = q(
        driver,
        database,
        "MATCH (:Span {key: $h})-[e:EVIDENCE {type: 'obj'}]->(:Span {key: $d}) RETURN e.doc_id AS doc, e.unit AS unit, "
        "e.units AS units, e.scores AS scores, e.source_starts AS ss, e.target_starts AS ts ORDER BY doc",
        h=WON,
        d=NOBEL,
    )
    assert evidence == [
        {"doc": "t1", "unit": U_OBJ, "units": [U_OBJ], "scores": [0.93], "ss": [12], "ts": [16]},
        {"doc": "t2", "unit": U_OBJ, "units": [U_OBJ], "scores": [0.8], "ss": [13], "ts": [17]},
    ]
    # What Neo4j Browser users type: the typed relation by its relationship type.
    rows = q(
        driver,
        database,
        "MATCH p = (h:Span)-[r:OBJ]->(d:Span) RETURN h.text AS h, d.text AS d ORDER BY r.score_max DESC LIMIT 25",
    )
    assert rows == [{"h": "won", "d": "the Nobel Prize in Physics"}, {"h": "shared", "d": "prize"}]
    # Pronouns: one node per pronoun per document, labelled :Pronoun.
    pronouns = q(driver, database, "MATCH (s:Pronoun) RETURN s.key AS key, s.kind AS kind, labels(s) AS labels")
    assert sorted((r["key"], r["kind"], sorted(r["labels"])) for r in pronouns) == [
        (HER, "pronoun", ["Pronoun", "Span"]),
        (SHE, "pronoun", ["Pronoun", "Span"]),
    ]
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database))


def test_replacing_and_deleting_documents_removes_typed_relationships_exactly(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [typed1(), typed2()])
    assert store.upsert_document(driver, database, typed1_changed()) == "replaced"
    # What only the old t1 said is gone: the second sentence's spans and edges, and the untyped edge.
    types = relationship_counts(driver, database)
    assert (types.get("NSUBJ"), types.get("OBJ"), types.get("NMOD_POSS"), types.get("RELATES")) == (2, 1, None, None)
    assert q(driver, database, "MATCH (s:Pronoun) RETURN s") == []
    assert q(driver, database, "MATCH (s:Span) WHERE s.key IN $k RETURN s", k=[SHARED, PRIZE, SHE, HER]) == []
    obj = q(driver, database, "MATCH ()-[r:OBJ]->() RETURN r.count AS c, r.score_max AS mx, r.documents AS d")
    assert obj == [{"c": 2, "mx": 0.9, "d": ["t1", "t2"]}]
    assert_matches_kg(driver, database, kg_of(typed1(), typed2(), typed1_changed()))
    # The database is the one a fresh ingest of the current documents gives (history aside).
    replaced = dump(driver, database, element_ids=False, skip=HISTORY)
    store.clear_database(driver, database)
    store.upsert_analyses(driver, database, [typed2(), typed1_changed()])
    assert dump(driver, database, element_ids=False, skip=HISTORY) == replaced

    assert store.delete_document(driver, database, "t2") is True
    obj = q(driver, database, "MATCH ()-[r:OBJ]->() RETURN r.count AS c, r.score_max AS mx, r.documents AS d")
    assert obj == [{"c": 1, "mx": 0.9, "d": ["t1"]}]
    deleted = dump(driver, database, element_ids=False, skip=HISTORY)
    store.clear_database(driver, database)
    store.upsert_document(driver, database, typed1_changed())
    assert dump(driver, database, element_ids=False, skip=HISTORY) == deleted
    assert store.delete_document(driver, database, "t1") is True
    assert counts(driver, database) == (0, 0)


def test_typed_relation_labels_and_the_graph_round_trip(db) -> None:
    driver, database = db
    labels = {"obj": "object", NSUBJ: "amod (0.81)"}
    store.upsert_analyses(driver, database, [typed1()], relation_labels=labels)
    assert q(driver, database, "MATCH (t:RelationType) RETURN t.id AS id, t.label AS l ORDER BY id") == [
        {"id": NSUBJ, "l": "amod (0.81)"},
        {"id": "obj", "l": "object"},
    ]
    assert {r["l"] for r in q(driver, database, "MATCH ()-[r:OBJ]->() RETURN r.label AS l")} == {"object"}
    assert_matches_kg(driver, database, kg_of(typed1(), relation_labels=labels))
    # An empty label: the typed relation's edges fall back to its name, as in KnowledgeGraph.
    store.set_relation_labels(driver, database, {"obj": "", "nsubj": "subject"})
    labels = {**labels, "obj": "", "nsubj": "subject"}
    assert {r["l"] for r in q(driver, database, "MATCH ()-[r:OBJ]->() RETURN r.label AS l")} == {"obj"}
    assert_matches_kg(driver, database, kg_of(typed1(), relation_labels=labels))
    assert store.read_relation_labels(driver, database) == labels
    # NetworkX -> Neo4j -> NetworkX with typed relations, units and pronouns.
    store.clear_database(driver, database)
    kg = kg_of(typed1(), typed2(), relation_labels=labels)
    kg.add_analysis(typed1_changed())
    assert store.upsert_graph(driver, database, kg) == {"added": 2, "unchanged": 0, "replaced": 0}
    assert_matches_kg(driver, database, kg)
    back = store.read_graph(driver, database)
    assert_same_kg(kg, back)
    assert back.g.edges[WON, NOBEL, "obj"]["evidence"][0]["unit"] == U_OBJ


BAD_RELATIONS = ["obj) DETACH DELETE n //", "foo", "NSUBJ", "Obj", "nsubj:outer", "obj ", "RELATES", "OBJ]->() //"]


def test_a_relation_outside_the_whitelist_is_refused_before_anything_is_written(db) -> None:
    driver, database = db
    store.upsert_document(driver, database, typed1())
    before = dump(driver, database)
    for bad in BAD_RELATIONS:
        analysis = typed2()
        analysis.relations.append(SpanRelation(1, 2, bad, 0.5, 0, U_OBJ))
        message = re.escape(f"relation type {bad!r} is not allowed")
        with pytest.raises(ValueError, match=message):
            store.upsert_document(driver, database, analysis)
        (result,) = store.upsert_batch(driver, database, [analysis])
        assert isinstance(result, ValueError) and re.search(message, str(result))
        with pytest.raises(ValueError, match=message):
            store.set_relation_labels(driver, database, {bad: "x"})
        with pytest.raises(ValueError, match=message):
            store.relationship_type(bad)
    no_unit = typed2()
    no_unit.relations[0] = replace(no_unit.relations[0], unit=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="relation 0 has unit None"):
        store.upsert_document(driver, database, no_unit)
    assert dump(driver, database) == before


@pytest.mark.parametrize(
    ("relation", "expected"),
    [
        ("nsubj", "NSUBJ"),
        ("obj", "OBJ"),
        ("nmod:poss", "NMOD_POSS"),
        ("aux:pass", "AUX_PASS"),
        ("compound:prt", "COMPOUND_PRT"),
        ("acl:relcl", "ACL_RELCL"),
        ("L2H8k12", "RELATES"),
        ("L0H3c1-4", "RELATES"),
    ],
)
def test_relationship_type_of_each_relation(relation: str, expected: str) -> None:
    assert store.relationship_type(relation) == expected
    assert store.check_relation_type(relation) == relation


def test_relationship_types_cover_the_closed_set_and_clash_with_nothing() -> None:
    types = store.RELATIONSHIP_TYPES
    assert list(types) == list(DEPENDENCY_RELATIONS)
    assert len(set(types.values())) == len(types)
    assert all(re.fullmatch(r"[A-Z][A-Z_]*", t) for t in types.values())
    assert not set(types.values()) & {"RELATES", "EVIDENCE", "MENTIONED_IN", "PART_OF", "FACT", "FACT_EVIDENCE"}


def test_evidence_stored_before_units_existed_still_reads_and_recomputes(db) -> None:
    driver, database = db
    store.upsert_document(driver, database, doc1())
    q(driver, database, "MATCH ()-[e:EVIDENCE]->() REMOVE e.unit, e.units")
    assert_same_kg(kg_of(doc1()), store.read_graph(driver, database))
    store.upsert_document(driver, database, doc2())  # shares MC -> radium: recomputed from the old rows
    assert_matches_kg(driver, database, kg_of(doc1(), doc2()))


def test_random_typed_and_untyped_batches_match_the_knowledge_graph(db) -> None:
    """upsert_batch on random mixed corpora (typed relations with units, subspace ids, pronouns) with
    replacements and deletions: the store equals the KnowledgeGraph."""
    driver, database = db
    rng = random.Random(31)
    vocab = ["Marie", "Pierre", "she", "he", "radium", "study", "lab", "prize", "won"]
    types = ["nsubj", "obj", "nmod:poss", "acl:relcl", "L2H8k12"]
    units = ["qk:a", "qk:b", "qk:c"]
    kg = KnowledgeGraph()
    ids = [f"m{i}" for i in range(6)]
    for step in range(20):
        batch = []
        for _ in range(rng.randint(1, 5)):
            analysis = _random_analysis(rng, rng.choice(ids), vocab, types)
            analysis.relations = [
                replace(r, unit=rng.choice(units)) if r.relation in DEPENDENCY_RELATIONS else r
                for r in analysis.relations
            ]
            batch.append(analysis)
        expected = [kg.add_analysis(a) for a in batch]
        results = store.upsert_batch(
            driver, database, batch, batch_size=rng.choice([1, 4, 1000]), max_documents=rng.choice([1, 2, 500])
        )
        assert results == expected, step
        if step % 7 == 6 and kg.documents:
            victim = sorted(kg.documents)[rng.randrange(len(kg.documents))]
            kg.remove_document(victim)
            assert store.delete_document(driver, database, victim)
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database))


# ── atomicity ────────────────────────────────────────────────────────────────────────────────────


class SimulatedCrash(RuntimeError):
    """Raised by a batch callback to stop a write half-way (not a transient error: no retry)."""


def crash_after(batches: int, seen: list[tuple[str, int]]) -> store.BatchCallback:
    """A progress callback that records each batch and raises after the ``batches``-th one."""

    def on_batch(statement: str, rows: int) -> None:
        seen.append((statement, rows))
        if len(seen) >= batches:
            raise SimulatedCrash(f"simulated crash after {statement}")

    return on_batch


def test_a_failure_mid_document_leaves_the_previous_state_and_a_rerun_completes(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2()])
    before = dump(driver, database)
    # Fails after the 2nd UNWIND batch with batch_size=1: old contribution already deleted in the
    # transaction and new rows partly written, so a non-atomic writer would leave a torn document.
    seen: list[tuple[str, int]] = []
    with pytest.raises(SimulatedCrash, match="simulated crash after SPANS"):
        store.upsert_document(driver, database, doc2_changed(), batch_size=1, on_batch=crash_after(2, seen))
    assert seen == [("SPANS", 1), ("SPANS", 1)]
    assert dump(driver, database) == before
    # A new document failing half-way (after its spans, in its sentences) leaves no trace either.
    d3 = build("d3", ["Marie Curie won."], [(MC, "Marie Curie", 0, 0), ("word:win", "won", 0, 0)], [(0, 1, OTHER, 0.2)])
    seen = []
    with pytest.raises(SimulatedCrash, match="simulated crash after SENTENCES"):
        store.upsert_document(driver, database, d3, batch_size=1, on_batch=crash_after(3, seen))
    assert dump(driver, database) == before
    # The rerun completes the graph, and the callback sees every batch of a complete write.
    progress: list[tuple[str, int]] = []
    assert store.upsert_document(driver, database, doc2_changed(), on_batch=lambda s, n: progress.append((s, n))) == (
        "replaced"
    )
    assert [s for s, _ in progress][:4] == ["SPANS", "SENTENCES", "MENTIONS", "EVIDENCE"]
    assert store.upsert_document(driver, database, d3) == "added"
    assert_matches_kg(driver, database, kg_of(doc1(), doc2_changed(), d3))


def test_a_batch_that_writes_fewer_rows_than_it_was_sent_raises_and_writes_nothing(db) -> None:
    from pipeline.errors import StoreIntegrityError
    from pipeline.store.upsert import _Batcher

    driver, database = db
    store.upsert_analyses(driver, database, [doc1()])
    before = dump(driver, database)
    # A SENTENCES row for a document that does not exist: its MATCH drops the row, which without the
    # check would leave the batch silently short.
    with pytest.raises(StoreIntegrityError, match="SENTENCES wrote 1 of the 2 rows"):
        with driver.session(database=database) as s, s.begin_transaction() as tx:
            batcher = _Batcher(tx, 2, None)
            batcher.send("SENTENCES", [["d1", 7, "A new sentence."], ["no-such-document", 0, "Lost."]])
            batcher.check_counts()
            tx.commit()
    assert dump(driver, database) == before


def test_a_sent_batch_is_not_kept_alive_by_the_open_transaction(db) -> None:
    import sys

    from pipeline.store.upsert import _Batcher

    driver, database = db
    store.upsert_analyses(driver, database, [doc1()])
    rows = [["d1", 7, "A new sentence."], ["d1", 8, "Another one."]]
    before = [sys.getrefcount(r) for r in rows]
    with driver.session(database=database) as s, s.begin_transaction() as tx:
        batcher = _Batcher(tx, 1, None)
        batcher.send("SENTENCES", iter(rows))
        # The driver keeps a statement's parameters until the transaction closes; the batcher empties
        # its batch lists once sent, so the rows (millions in a big load) are freed while the server
        # works, not after the commit.
        assert [sys.getrefcount(r) for r in rows] == before
        batcher.check_counts()
        tx.commit()
    written = q(driver, database, "MATCH (s:Sentence {doc_id: 'd1'}) WHERE s.index IN [7, 8] RETURN s.text AS text")
    assert sorted(r["text"] for r in written) == ["A new sentence.", "Another one."]


def test_every_batched_statement_has_a_result_so_the_server_runs_it_at_pull(db) -> None:
    from pipeline.store import queries

    driver, database = db
    sent: set[str] = set()
    on_batch = lambda statement, rows: sent.add(statement)  # noqa: E731
    store.upsert_analyses(driver, database, [doc1(), doc2(), fact_doc1()], on_batch=on_batch)
    store.upsert_analyses(driver, database, [doc2_changed(), fact_doc2()], on_batch=on_batch)
    store.set_relation_labels(driver, database, {OTHER: "something else"})
    assert store.delete_document(driver, database, "d1", on_batch=on_batch)
    assert {"SENTENCES", "MENTIONS", "EVIDENCE", "NODES_RECOMPUTE", "FACT_EVIDENCE"} <= sent
    # A statement without a result is run while the server answers its RUN, and the driver's run()
    # waits for that answer: its batches could not overlap the client's work on the next one.
    for name in sent:  # the statement's last clause (clauses start a line; continuations are indented)
        last = [line for line in getattr(queries, name).splitlines() if re.match(r"[A-Z]", line)][-1]
        assert last.startswith("RETURN "), (name, last)
    with driver.session(database=database) as s, s.begin_transaction() as tx:
        result = tx.run(queries.SENTENCES, rows=[["d2", 99, "x"]])
        assert result.keys() == ["rows"] and result.single()["rows"] == 1
        tx.rollback()


# ── round trip ───────────────────────────────────────────────────────────────────────────────────


def test_round_trip_networkx_to_neo4j_to_networkx(db) -> None:
    driver, database = db
    kg = kg_of(doc1(), doc2(), relation_labels={NSUBJ: "nsubj", "L9H9k9": "unused"})
    kg.add_analysis(doc2_changed())  # a replacement, so ingest order matters for the tie-breaks
    assert store.upsert_graph(driver, database, kg) == {"added": 2, "unchanged": 0, "replaced": 0}
    back = store.read_graph(driver, database)
    assert_same_kg(kg, back)
    assert_matches_kg(driver, database, kg)
    # The read-back graph keeps per-document provenance: it can still replace documents.
    assert back.add_analysis(doc2()) == "replaced"
    kg.add_analysis(doc2())
    assert_same_kg(kg, back)
    # Writing the same graph again changes nothing.
    assert store.upsert_graph(
        driver, database, kg_of(doc1(), doc2_changed(), relation_labels={NSUBJ: "nsubj", "L9H9k9": "unused"})
    ) == {
        "added": 0,
        "unchanged": 2,
        "replaced": 0,
    }


def test_read_graph_after_document_upserts_equals_the_ingested_knowledge_graph(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1(), doc2(), doc2_changed()], relation_labels={OTHER: "other"})
    assert_same_kg(
        kg_of(doc1(), doc2(), doc2_changed(), relation_labels={OTHER: "other"}), store.read_graph(driver, database)
    )


def _random_analysis(rng: random.Random, doc_id: str, vocab: list[str], types: list[str]) -> DocumentAnalysis:
    n_sent = rng.randint(1, 4)
    sentences, spans = [], []
    for _ in range(n_sent):
        words = rng.sample(vocab, rng.randint(2, 5))
        # surface variants of the same node ("Marie", "MARIE", "marie"): ties for the text tie-break
        words = [rng.choice([w, w.upper(), w.lower()]) if w[0].isupper() else w for w in words]
        sentences.append(" ".join(words) + ".")
    text = " ".join(sentences)
    bounds, pos = [], 0
    for sentence in sentences:
        bounds.append((pos, pos + len(sentence)))
        pos += len(sentence) + 1
    for s, (start, _) in enumerate(bounds):
        at = start
        for word in sentences[s][:-1].split(" "):
            if word.lower() in {"marie", "pierre", "paris", "nobel"}:
                key, label, kind = f"entity:PERSON:{word.lower()}", "PERSON", "entity"
            elif word.lower() in {"she", "he"}:  # one pronoun node per pronoun per document
                key, label, kind = f"pronoun:{doc_id}:{word.lower()}", "", "pronoun"
            else:
                key, label, kind = f"word:{word}", "", "word"
            spans.append(Span(key, word, label, kind, s, at, at + len(word)))  # type: ignore[arg-type]
            at += len(word) + 1
    rels = []
    for _ in range(rng.randint(0, 8)):
        i = rng.randrange(len(spans))
        same = [j for j, sp in enumerate(spans) if sp.sent_index == spans[i].sent_index]
        j = rng.choice(same)
        rels.append(
            SpanRelation(i, j, rng.choice(types), rng.choice([0.1, 0.25, 1 / 3, 0.5, 0.7, 0.9]), spans[i].sent_index)
        )
    return DocumentAnalysis(Document(doc_id, text), bounds, spans, rels)


def test_random_corpus_with_replacements_matches_the_knowledge_graph(db) -> None:
    driver, database = db
    rng = random.Random(7)
    vocab = ["Marie", "Pierre", "Paris", "radium", "study", "lab", "prize", "Nobel", "work", "metal"]
    types = ["L0H1k2", "L1H0c3", "L2H8k12"]
    kg = KnowledgeGraph()
    # ids that sort differently by UTF-16 unit and by code point: stored lists must follow Python's order
    ids = [f"doc{i}" for i in range(7)] + ["d\U0001f600", "d\uffff", "d\ue000"]
    for step in range(40):
        analysis = _random_analysis(rng, rng.choice(ids), vocab, types)
        expected = kg.add_analysis(analysis)
        assert store.upsert_document(driver, database, analysis, batch_size=rng.choice([1, 3, 1000])) == expected
        if step % 13 == 12 and kg.documents:
            victim = sorted(kg.documents)[rng.randrange(len(kg.documents))]
            kg.remove_document(victim)
            assert store.delete_document(driver, database, victim)
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database))


def test_concurrent_writers_on_shared_spans_keep_the_aggregates_exact(db) -> None:
    """Four threads upsert overlapping documents at once; span locks serialize the shared parts."""
    from concurrent.futures import ThreadPoolExecutor

    driver, database = db
    rng = random.Random(11)
    vocab = ["Marie", "Pierre", "Paris", "radium", "study", "lab"]
    analyses = {f"c{i:02d}": _random_analysis(rng, f"c{i:02d}", vocab, ["L0H1k2", "L2H8k12"]) for i in range(16)}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: store.upsert_document(driver, database, a), analyses.values()))
    assert results == ["added"] * 16
    order = q(driver, database, "MATCH (d:Document) RETURN d.id AS id, d.seq AS seq")
    kg = KnowledgeGraph()
    for row in sorted(order, key=lambda r: (r["seq"], r["id"])):  # the store's ingest order
        kg.add_analysis(analyses[row["id"]])
    assert_matches_kg(driver, database, kg)


# ── named queries plumbing ───────────────────────────────────────────────────────────────────────


def test_load_query_strips_comments_and_rejects_unknown_names() -> None:
    text = store.load_query("graph_stats")
    assert "//" not in text and "MATCH" in text
    for bad in ("nope", "../pipeline/store", "graph_stats.cypher", "GRAPH_STATS"):
        with pytest.raises(ValueError, match="unknown query"):
            store.load_query(bad)


# ── batches: many documents per transaction ──────────────────────────────────────────────────────


def test_random_batches_with_replacements_and_bad_documents_match_the_knowledge_graph(db) -> None:
    """upsert_batch on random batches (shared spans, replacements, repeated ids, refused documents)
    with random transaction limits: one result per analysis, and the store equals the KnowledgeGraph."""
    driver, database = db
    rng = random.Random(23)
    vocab = ["Marie", "Pierre", "Paris", "radium", "study", "lab", "prize", "Nobel", "work", "metal"]
    types = ["L0H1k2", "L1H0c3", "L2H8k12"]
    kg = KnowledgeGraph()
    ids = [f"b{i}" for i in range(6)] + ["d\U0001f600", "d\ue000"]
    for step in range(25):
        batch: list[DocumentAnalysis] = []
        expected: list[str | type[ValueError]] = []
        for _ in range(rng.randint(1, 7)):
            analysis = _random_analysis(rng, rng.choice(ids), vocab, types)
            if rng.random() < 0.1:  # refused by the whitelist: reported, the rest of the batch is written
                analysis.relations.append(SpanRelation(0, 0, "not a type", 0.5, 0))
                expected.append(ValueError)
            else:
                expected.append(kg.add_analysis(analysis))
            batch.append(analysis)
        results = store.upsert_batch(
            driver, database, batch, batch_size=rng.choice([1, 4, 1000]), max_documents=rng.choice([1, 2, 3, 500])
        )
        assert [type(r) if isinstance(r, ValueError) else r for r in results] == expected, step
        if step % 9 == 8:
            assert_matches_kg(driver, database, kg)
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database))


def test_a_batch_is_one_transaction_and_unchanged_documents_are_skipped(db) -> None:
    driver, database = db
    store.upsert_batch(driver, database, [doc1(), doc2()])
    before = dump(driver, database)
    d3 = build("d3", ["Marie Curie won."], [(MC, "Marie Curie", 0, 0), ("word:win", "won", 0, 0)], [(0, 1, OTHER, 0.2)])
    # A crash in the batch's EVIDENCE statement: the replacement and the new document both vanish.
    seen: list[tuple[str, int]] = []
    with pytest.raises(SimulatedCrash, match="simulated crash after EVIDENCE"):
        store.upsert_batch(driver, database, [doc1(), doc2_changed(), d3], on_batch=crash_after(4, seen))
    assert [s for s, _ in seen] == ["SPANS", "SENTENCES", "MENTIONS", "EVIDENCE"]
    assert dump(driver, database) == before
    # The rerun: doc1 skipped (one statement for the whole batch's states, nothing written for it).
    # The cyclic garbage collector is paused while the rows are built and written (pipeline.gc_pause),
    # and on again afterwards, as before the call.
    progress: list[tuple[str, int, bool]] = []
    assert gc.isenabled()
    results = store.upsert_batch(
        driver, database, [doc1(), doc2_changed(), d3], on_batch=lambda s, n: progress.append((s, n, gc.isenabled()))
    )
    assert gc.isenabled()
    assert results == ["unchanged", "replaced", "added"]
    assert [s for s, _, _ in progress][:4] == ["SPANS", "SENTENCES", "MENTIONS", "EVIDENCE"]
    assert not any(enabled for _, _, enabled in progress)
    assert_matches_kg(driver, database, kg_of(doc1(), doc2_changed(), d3))
    assert store.upsert_batch(driver, database, [doc1(), doc2_changed(), d3]) == ["unchanged"] * 3
    # The same id twice in one batch: written in order, as by two calls.
    assert store.upsert_batch(driver, database, [doc2(), doc2_changed()]) == ["replaced", "replaced"]
    assert_matches_kg(driver, database, kg_of(doc1(), doc2_changed(), d3, doc2(), doc2_changed()))
    with pytest.raises(ValueError, match="max_documents"):
        store.upsert_batch(driver, database, [doc1()], max_documents=0)


def test_upsert_analyses_keeps_the_collector_paused_over_a_chunk_of_a_sequence_not_of_a_stream(db) -> None:
    from collections.abc import Sequence

    driver, database = db
    docs = [doc1(), doc2(), fact_doc1()]

    class Recorded(Sequence):
        """The documents, noting whether the collector was on as each one is fetched."""

        def __init__(self) -> None:
            self.fetched: list[bool] = []

        def __len__(self) -> int:
            return len(docs)

        def __getitem__(self, i):  # type: ignore[override]
            item = docs[i]  # IndexError ends the iteration, unrecorded
            self.fetched.append(gc.isenabled())
            return item

    assert gc.isenabled()
    sequence = Recorded()
    store.upsert_analyses(driver, database, sequence, max_documents=2)
    # Paused from a chunk's first document to its commit: the second document is fetched paused; the
    # third starts the next chunk, after the first one's pause ended.
    assert sequence.fetched == [True, False, True]
    assert gc.isenabled()
    stream: list[bool] = []

    def generated():
        for d in docs:
            stream.append(gc.isenabled())
            yield d

    store.clear_database(driver, database)
    store.upsert_analyses(driver, database, generated(), max_documents=2)
    assert stream == [True, True, True]  # a stream computes its next analysis with the collector on
    assert gc.isenabled()
    assert_matches_kg(driver, database, kg_of(*docs))


def test_concurrent_batch_writers_on_shared_spans_keep_the_aggregates_exact(db) -> None:
    """Four threads each upsert a batch of overlapping documents; span locks serialize the shared parts."""
    from concurrent.futures import ThreadPoolExecutor

    driver, database = db
    rng = random.Random(5)
    vocab = ["Marie", "Pierre", "Paris", "radium", "study", "lab"]
    analyses = {f"k{i:02d}": _random_analysis(rng, f"k{i:02d}", vocab, ["L0H1k2", "L2H8k12"]) for i in range(16)}
    batches = [list(analyses.values())[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: store.upsert_batch(driver, database, b), batches))
    assert results == [["added"] * 4] * 4
    order = q(driver, database, "MATCH (d:Document) RETURN d.id AS id, d.seq AS seq")
    kg = KnowledgeGraph()
    for row in sorted(order, key=lambda r: (r["seq"], r["id"])):  # the store's ingest order
        kg.add_analysis(analyses[row["id"]])
    assert_matches_kg(driver, database, kg)


# ── facts ────────────────────────────────────────────────────────────────────────────────────────

EVIL_PREDICATE = "x}]->() DETACH DELETE n //"


def fact_docs() -> list[DocumentAnalysis]:
    """The graph tests' fact documents: f1 (win, move to), f2 (win again, mark beside the relation mark)."""
    return [fact_doc1(), fact_doc2()]


def fact_counts(driver: Any, database: str) -> tuple[int, int]:
    return (
        q(driver, database, "MATCH ()-[f:FACT]->() RETURN count(f) AS n")[0]["n"],
        q(driver, database, "MATCH ()-[e:FACT_EVIDENCE]->() RETURN count(e) AS n")[0]["n"],
    )


def property_count(driver: Any, database: str) -> int:
    """Every property of every node and relationship, counted."""
    return q(
        driver,
        database,
        "CALL () { MATCH (n) RETURN sum(size(keys(n))) AS a } "
        "CALL () { MATCH ()-[r]->() RETURN sum(size(keys(r))) AS b } RETURN coalesce(a, 0) + coalesce(b, 0) AS n",
    )[0]["n"]


def test_facts_are_written_as_fact_relationships_with_per_document_evidence(db) -> None:
    driver, database = db
    assert store.upsert_analyses(driver, database, fact_docs()) == {"added": 2, "unchanged": 0, "replaced": 0}
    kg = kg_of(*fact_docs())
    assert fact_counts(driver, database) == (3, 4)  # win (f1, f2), move to (f1), mark (f2)
    (win,) = q(
        driver, database, "MATCH (:Span {key: $s})-[f:FACT]->(:Span {key: $o}) RETURN properties(f) AS p", s=MC, o=NOBEL
    )
    edge = kg.g.edges[MC, NOBEL, "fact:win"]
    assert win["p"] == {
        "predicate": "win",
        "fact_kind": "action",
        "units": [U_NSUBJ, U_OBJ],
        "count": 2,
        "probability_max": 0.97 * 0.93,
        "probability_mean": edge["probability_mean"],
        "documents": ["f1", "f2"],
    }
    # The relation mark and the predicate mark between the same spans stay apart.
    between = q(
        driver,
        database,
        "MATCH (:Span {key: $s})-[r]->(:Span {key: $o}) RETURN type(r) AS t, coalesce(r.type, r.predicate) AS name "
        "ORDER BY t, name",
        s=MC,
        o=PARIS_F,
    )
    assert [(r["t"], r["name"]) for r in between] == [
        ("EVIDENCE", "mark"),
        ("FACT", "mark"),
        ("FACT", "move to"),
        ("FACT_EVIDENCE", "mark"),
        ("FACT_EVIDENCE", "move to"),
        ("MARK", "mark"),
    ]
    (move,) = q(
        driver,
        database,
        "MATCH ()-[e:FACT_EVIDENCE {predicate: 'move to'}]->() RETURN properties(e) AS p",
    )
    p = move["p"]
    assert (p["doc_id"], p["count"], p["kinds"], p["sentences"]) == ("f1", 1, ["oblique"], [1])
    assert p["arc_items"] == [0, 0, 0] and p["arc_relations"] == ["nsubj", "obl", "case"]
    assert p["arc_heads"] == ["moved", "moved", "Paris"] and p["arc_dependents"] == ["Marie Curie", "Paris", "to"]
    # The sentence cited only by the fact is stored.
    assert q(driver, database, "MATCH (s:Sentence {doc_id: 'f1', index: 1}) RETURN s.text AS t") == [
        {"t": "Marie Curie moved to Paris."}
    ]
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database))


def test_a_fact_rerun_is_idempotent(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, fact_docs())
    before = dump(driver, database)
    sizes = (counts(driver, database), property_count(driver, database))
    assert store.upsert_analyses(driver, database, fact_docs()) == {"added": 0, "unchanged": 2, "replaced": 0}
    assert store.upsert_document(driver, database, fact_doc1()) == "unchanged"
    assert (counts(driver, database), property_count(driver, database)) == sizes
    assert dump(driver, database) == before


def test_replacing_a_document_changes_and_removes_its_facts_exactly(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, fact_docs())
    # f2 again, changed: a weaker win, and no mark at all.
    changed = fact_doc2(0.25, "anew")
    changed = replace(changed, facts=changed.facts[:1])
    assert store.upsert_document(driver, database, changed) == "replaced"
    assert fact_counts(driver, database) == (2, 3)
    assert q(driver, database, "MATCH ()-[f:FACT {predicate: 'mark'}]->() RETURN f") == []
    win = q(driver, database, "MATCH ()-[f:FACT {predicate: 'win'}]->() RETURN f.probability_mean AS m, f.count AS c")
    kg = kg_of(*fact_docs(), changed)
    assert win == [{"m": kg.g.edges[MC, NOBEL, "fact:win"]["probability_mean"], "c": 2}]
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database))
    # The database is the one a fresh ingest of the current documents gives (history aside).
    replaced = dump(driver, database, element_ids=False, skip=HISTORY)
    store.clear_database(driver, database)
    store.upsert_analyses(driver, database, [fact_doc1(), changed])
    assert dump(driver, database, element_ids=False, skip=HISTORY) == replaced

    # Deleting f1 removes its facts and recomputes the shared win from f2 alone.
    assert store.delete_document(driver, database, "f1") is True
    assert q(driver, database, "MATCH ()-[f:FACT]->() RETURN f.predicate AS p, f.documents AS d, f.units AS u") == [
        {"p": "win", "d": ["f2"], "u": [U_NSUBJ_B]}
    ]
    kg.remove_document("f1")
    assert_matches_kg(driver, database, kg)
    assert store.delete_document(driver, database, "f2") is True
    assert counts(driver, database) == (0, 0)


def test_an_injection_looking_predicate_is_stored_verbatim(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1()])
    evil = fact_doc2()
    evil = replace(evil, facts=[replace(evil.facts[1], predicate=EVIL_PREDICATE), evil.facts[0]])
    n0, r0 = counts(driver, database)
    assert store.upsert_document(driver, database, evil) == "added"
    rows = q(
        driver,
        database,
        "MATCH (a:Span)-[f:FACT {predicate: $p}]->(b:Span) RETURN a.key AS a, b.key AS b",
        p=EVIL_PREDICATE,
    )
    assert rows == [{"a": MC, "b": PARIS_F}]
    # Exactly the document's own additions: Document, Sentence, 4 new spans (won, Nobel Prize, marking,
    # Paris); 5 MENTIONED_IN, PART_OF, 2 EVIDENCE, 2 typed aggregates, 2 FACT, 2 FACT_EVIDENCE.
    assert counts(driver, database) == (n0 + 6, r0 + 14)
    kg = kg_of(doc1(), evil)
    assert kg.g.has_edge(MC, PARIS_F, "fact:" + EVIL_PREDICATE)
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database))
    assert store.delete_document(driver, database, evil.document.id)
    assert counts(driver, database) == (n0, r0)


def test_a_bad_fact_is_refused_before_anything_is_written(db) -> None:
    driver, database = db
    store.upsert_analyses(driver, database, [doc1()])
    before = dump(driver, database)
    bad = fact_doc2()
    bad = replace(bad, facts=[replace(bad.facts[0], probability=1.5)])
    with pytest.raises(ValueError, match="outside"):
        store.upsert_document(driver, database, bad)
    results = store.upsert_batch(driver, database, [bad, fact_doc1()])
    assert isinstance(results[0], ValueError) and results[1] == "added"
    store.delete_document(driver, database, "f1")
    assert dump(driver, database, element_ids=False, skip=HISTORY) == dump_without_history(before)


def dump_without_history(snapshot: tuple) -> tuple:
    """A ``dump`` snapshot as ``dump(element_ids=False, skip=HISTORY)`` would have taken it."""
    nodes, rels = snapshot

    def strip(props: tuple) -> tuple:
        return tuple(p for p in props if p[0] not in HISTORY)

    return (
        tuple(sorted((ident, strip(props), "") for ident, props, _ in nodes)),
        tuple(sorted((t, a, b, strip(props), "") for t, a, b, props, _ in rels)),
    )


def test_random_documents_with_facts_and_replacements_match_the_knowledge_graph(db) -> None:
    driver, database = db
    rng = random.Random(11)
    vocab = ["Marie", "Pierre", "Paris", "radium", "study", "lab", "prize", "Nobel", "work", "metal"]
    predicates = ["win", "be", "have", "move to", "mark", EVIL_PREDICATE]
    kg = KnowledgeGraph(max_evidence=2)
    for step in range(30):
        analysis = _random_analysis(rng, f"doc{rng.randrange(6)}", vocab, ["L0H1k2", "nsubj", "obj"])
        facts = []
        for _ in range(rng.randint(0, 6)):
            i = rng.randrange(len(analysis.spans))
            same = [j for j, sp in enumerate(analysis.spans) if sp.sent_index == analysis.spans[i].sent_index]
            j = rng.choice(same)
            arcs = [
                (
                    rng.choice(["nsubj", "obj", "obl"]),
                    rng.choice(["", U_NSUBJ, U_OBJ]),
                    rng.choice([0.5, 1 / 3, 0.9]),
                    i,
                    j,
                )
            ]
            facts.append(
                (i, j, rng.choice(predicates), rng.choice(["action", "oblique", "copula", "possession"]), i, arcs)
            )
        analysis = with_facts(analysis, facts)
        expected = kg.add_analysis(analysis)
        assert store.upsert_document(driver, database, analysis, batch_size=rng.choice([1, 1000])) == expected
        if step % 11 == 10 and kg.documents:
            victim = sorted(kg.documents)[rng.randrange(len(kg.documents))]
            kg.remove_document(victim)
            assert store.delete_document(driver, database, victim)
    assert kg.summary()["facts"] > 5
    assert_matches_kg(driver, database, kg)
    assert_same_kg(kg, store.read_graph(driver, database, max_evidence=2))


# ── a server without the memory for a whole batch ────────────────────────────────────────────────


def test_a_batch_the_server_has_no_transaction_memory_for_is_split_and_written_exactly() -> None:
    """On a server whose per-transaction memory (``db.memory.transaction.max``, set through the dev
    server's ``settings``) holds a few documents but not the batch, the memory error is not retried
    as is: the batch is written as smaller transactions, in order, with the results and the store of
    one big transaction; a single document that does not fit raises the server's error, writing nothing."""
    import neo4j
    from conftest import TEST_PASSWORD

    from pipeline.store.dev_server import Neo4jDevServer
    from pipeline.store.settings import Neo4jSettings

    rng = random.Random(31)
    vocab = [f"w{i}" for i in range(300)] + ["Marie", "Pierre", "Paris", "Nobel"]
    types = ["L0H1k2", "L2H8k12", "nsubj"]
    batch = [_random_analysis(rng, f"m{i:03d}", vocab, types) for i in range(200)]
    batch[100:100] = [batch[3]]  # an unchanged rerun inside the batch (and so two transactions at least)
    settings = {"db.memory.transaction.max": "4m"}
    with Neo4jDevServer(heap_mb=512, pagecache_mb=64, password=TEST_PASSWORD, settings=settings) as server:
        driver = store.connect(Neo4jSettings(uri=server.uri, user="neo4j", password=TEST_PASSWORD))
        try:
            database = "neo4j"
            limit = q(driver, database, "SHOW SETTINGS YIELD name, value WHERE name = 'db.memory.transaction.max'")
            assert limit == [{"name": "db.memory.transaction.max", "value": "4.00MiB"}]
            spans: list[int] = []
            results = store.upsert_batch(
                driver, database, batch, on_batch=lambda s, n: spans.append(n) if s == "SPANS" else None
            )
            kg = KnowledgeGraph()
            assert results == [kg.add_analysis(a) for a in batch]
            assert results.count("unchanged") == 1
            assert len(spans) > 2  # each group was tried whole, then in halves (and smaller)
            assert_matches_kg(driver, database, kg)
            assert_same_kg(kg, store.read_graph(driver, database))
            assert store.upsert_batch(driver, database, batch) == ["unchanged"] * len(batch)

            before = dump(driver, database)
            huge = build(
                "huge",
                [" ".join(f"w{i}" for i in range(j, j + 40)) + "." for j in range(0, 4000, 40)],
                [(f"word:w{i}", f"w{i}", i // 40, 0) for i in range(4000)],
                [(i, i + 1, "L0H1k2", 0.5) for i in range(0, 3999, 2) if i // 40 == (i + 1) // 40],
            )
            with pytest.raises(neo4j.exceptions.TransientError) as raised:
                store.upsert_batch(driver, database, [huge])
            assert raised.value.code.endswith("MemoryPoolOutOfMemoryError")
            assert dump(driver, database) == before
        finally:
            driver.close()
