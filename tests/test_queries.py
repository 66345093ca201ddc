"""Every Cypher file in queries/ runs on a small hand-built corpus and returns the expected rows.

CHECKS is keyed by file name and must cover queries/ exactly, so a new query without a test fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_graph import with_facts
from test_store import (
    MARRIED,
    MC,
    NOBEL,
    NSUBJ,
    OTHER,
    PC,
    POLONIUM,
    PRIZE,
    RADIUM,
    SHARED,
    U_NSUBJ,
    U_OBJ,
    U_POSS,
    WON,
    build,
)

from pipeline import store
from pipeline.graph import KnowledgeGraph

PARIS = "entity:GPE:paris"
SORBONNE = "entity:ORG:sorbonne"
LOC = "L3H1k4"
LABELS = {NSUBJ: "nsubj", LOC: "location"}
HB = "entity:PERSON:henri becquerel"
HE = "pronoun:d5:he"
HIS = "pronoun:d5:his"
U_NSUBJ_B = "qk:nsubj:L3A:H1c0-7"
U_OBJ_B = "qk:obj:L3A:H2c0-3"


def corpus() -> list:
    d5, d6 = typed_documents()
    return [*untyped_documents(), d5, d6]


def typed_documents() -> list:
    """d5 and d6, with the facts composed from their typed arcs."""
    d5, d6 = _typed_documents()
    d5 = with_facts(
        d5,
        [
            (0, 2, "win", "action", 1, [("nsubj", U_NSUBJ, 0.97, 1, 0), ("obj", U_OBJ, 0.93, 1, 2)]),
            (3, 6, "share", "action", 4, [("nsubj", U_NSUBJ, 0.88, 4, 3), ("obj", U_OBJ, 0.71, 4, 6)]),
            (5, 6, "have", "possession", None, [("nmod:poss", U_POSS, 0.66, 6, 5)]),
        ],
    )
    d6 = with_facts(d6, [(0, 2, "win", "action", 1, [("nsubj", U_NSUBJ_B, 0.9, 1, 0), ("obj", U_OBJ_B, 0.8, 1, 2)])])
    return [d5, d6]


def untyped_documents() -> list:
    return [
        build(
            "d1",
            ["Marie Curie discovered radium.", "Marie Curie studied polonium."],
            [
                (MC, "Marie Curie", 0, 0),
                (RADIUM, "radium", 0, 0),
                (MC, "Marie Curie", 1, 0),
                (POLONIUM, "polonium", 1, 0),
            ],
            [(0, 1, NSUBJ, 0.8), (2, 3, NSUBJ, 0.6), (0, 1, OTHER, 0.3)],
        ),
        build(
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
        ),
        build(
            "d3",
            ["Marie Curie worked in Paris.", "The Sorbonne hired Marie Curie."],
            [
                (MC, "Marie Curie", 0, 0),
                (PARIS, "Paris", 0, 0),
                (SORBONNE, "Sorbonne", 1, 0),
                (MC, "Marie Curie", 1, 0),
            ],
            [(0, 1, LOC, 0.95), (2, 3, NSUBJ, 0.5)],
        ),
        build(
            "d4",
            ["Pierre Curie and Marie Curie lived in Paris."],
            [(PC, "Pierre Curie", 0, 0), (MC, "Marie Curie", 0, 0), (PARIS, "Paris", 0, 0)],
            [(0, 2, LOC, 0.65)],
        ),
    ]


def _typed_documents() -> list:
    return [
        # Typed relations (head -> dependent, with units) and pronouns, apart from Marie Curie.
        build(
            "d5",
            ["Henri Becquerel won the Nobel Prize in Physics.", "He shared his prize."],
            [
                (HB, "Henri Becquerel", 0, 0),
                (WON, "won", 0, 0),
                (NOBEL, "the Nobel Prize in Physics", 0, 0),
                (HE, "He", 1, 0),
                (SHARED, "shared", 1, 0),
                (HIS, "his", 1, 0),
                (PRIZE, "prize", 1, 0),
            ],
            [
                (1, 0, "nsubj", 0.97, U_NSUBJ),
                (1, 2, "obj", 0.93, U_OBJ),
                (4, 3, "nsubj", 0.88, U_NSUBJ),
                (4, 6, "obj", 0.71, U_OBJ),
                (6, 5, "nmod:poss", 0.66, U_POSS),
            ],
        ),
        build(
            "d6",
            ["Pierre Curie won the Nobel Prize in Physics too."],
            [(PC, "Pierre Curie", 0, 0), (WON, "won", 0, 0), (NOBEL, "the Nobel Prize in Physics", 0, 0)],
            [(1, 0, "nsubj", 0.9, U_NSUBJ_B), (1, 2, "obj", 0.8, U_OBJ_B)],
        ),
    ]


def check_strongest_relations(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(entity="marie curie", limit=3)
    assert [(r["direction"], r["type"], r["label"], r["other"], r["score_max"], r["count"]) for r in rows] == [
        ("out", LOC, "location", "Paris", 0.95, 1),
        ("out", NSUBJ, "nsubj", "radium", 0.8, 2),
        ("in", NSUBJ, "nsubj", "Pierre Curie", 0.7, 1),
    ]
    assert rows[1]["score_mean"] == pytest.approx(0.6) and rows[1]["documents"] == 2
    assert {r["unit"] for r in rows} == {""}  # untyped subspaces have no unit
    # By key as well; every relation of the node (4 out, 2 in) when the limit allows.
    assert len(run(entity=MC, limit=100)) == kg.g.out_degree(MC) + kg.g.in_degree(MC) == 6
    # A typed relation: head -> dependent, with its unit; the pronoun's only relation.
    rows = run(entity="won", limit=3)
    assert [(r["direction"], r["type"], r["label"], r["other"], r["unit"], r["count"]) for r in rows] == [
        ("out", "nsubj", "nsubj", "Henri Becquerel", U_NSUBJ, 1),
        ("out", "obj", "obj", "the Nobel Prize in Physics", U_OBJ, 2),
        ("out", "nsubj", "nsubj", "Pierre Curie", U_NSUBJ_B, 1),
    ]
    assert [(r["direction"], r["type"], r["other"]) for r in run(entity=HE, limit=10)] == [("in", "nsubj", "shared")]


def check_relation_graph(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(entity="marie curie", limit=3)
    assert [(r["source"], r["type"], r["label"], r["target"], r["score_max"]) for r in rows] == [
        ("Marie Curie", LOC, "location", "Paris", 0.95),
        ("Marie Curie", NSUBJ, "nsubj", "radium", 0.8),
        ("Pierre Curie", NSUBJ, "nsubj", "Marie Curie", 0.7),
    ]
    # The path itself (what Browser draws): source span, the relation, target span.
    first = rows[0]["p"]
    assert first[0]["key"] == MC and first[1] == "RELATES" and first[2]["key"] == PARIS
    assert len(run(entity=MC, limit=100)) == kg.g.out_degree(MC) + kg.g.in_degree(MC) == 6
    # Typed relations are drawn with their own relationship type.
    rows = run(entity="the Nobel Prize in Physics", limit=5)
    assert [(r["source"], r["type"], r["label"], r["target"]) for r in rows] == [
        ("won", "obj", "obj", "the Nobel Prize in Physics")
    ]
    assert [rows[0]["p"][0]["key"], rows[0]["p"][1], rows[0]["p"][2]["key"]] == [WON, "OBJ", NOBEL]
    # Without an entity: the whole graph (typed and untyped), strongest first.
    rows = run(entity=None, limit=100)
    assert len(rows) == kg.summary()["edges"] == kg.g.number_of_edges() - 4 == 8 + 6  # relations, no facts
    assert rows[0]["score_max"] == 0.97 and rows == sorted(rows, key=lambda r: -r["score_max"])
    assert {r["p"][1] for r in rows} == {"RELATES", "NSUBJ", "OBJ", "NMOD_POSS"}


def check_relation_types(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run()
    assert [(r["type"], r["relationship"], r["label"], r["edges"], r["evidence"]) for r in rows] == [
        (NSUBJ, "RELATES", "nsubj", 4, 5),
        ("nsubj", "NSUBJ", "", 3, 3),
        ("obj", "OBJ", "", 2, 3),
        (OTHER, "RELATES", "", 2, 2),
        (LOC, "RELATES", "location", 2, 2),
        ("nmod:poss", "NMOD_POSS", "", 1, 1),
    ]
    assert rows[0]["score_max"] == 0.8 and rows[4]["score_max"] == 0.95 and rows[1]["score_max"] == 0.97


def check_paths_between(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(source="Sorbonne", target="polonium", limit=5)
    assert len(rows) == 1
    assert rows[0]["texts"] == ["Sorbonne", "Marie Curie", "polonium"]
    assert rows[0]["steps"] == [f"Sorbonne -[{NSUBJ}]-> Marie Curie", f"Marie Curie -[{NSUBJ}]-> polonium"]
    assert rows[0]["hops"] == 2 and rows[0]["mean_score"] == pytest.approx(0.55)
    # Two hops both ways between "married" and Paris (through Pierre Curie); none longer than needed first.
    rows = run(source=MARRIED, target=PARIS, limit=5)
    assert rows[0]["keys"] == [MARRIED, PC, PARIS] and rows[0]["hops"] == 2
    assert rows[0]["steps"] == [f"Pierre Curie -[{OTHER}]-> married", f"Pierre Curie -[{LOC}]-> Paris"]
    assert run(source="radium", target="radium", limit=5) == []
    # Two parallel 2-hop paths (via two relation types), the stronger first.
    rows = run(source="Sorbonne", target="radium", limit=5)
    assert [(r["hops"], r["steps"][1]) for r in rows] == [
        (2, f"Marie Curie -[{NSUBJ}]-> radium"),
        (2, f"Marie Curie -[{OTHER}]-> radium"),
    ]
    assert [r["mean_score"] for r in rows] == [pytest.approx(0.65), pytest.approx(0.4)]
    # Through typed relations, in either direction.
    rows = run(source="Henri Becquerel", target="Pierre Curie", limit=5)
    assert rows[0]["steps"] == ["won -[nsubj]-> Henri Becquerel", "won -[nsubj]-> Pierre Curie"]
    # Only relations link spans: no shortcut through the document both are mentioned in.
    assert run(source="he", target="Henri Becquerel", limit=5) == []


def check_edge_provenance(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(source="Marie Curie", target="radium", type=NSUBJ)
    assert [(r["document"], r["sentence_index"], r["sentence"], r["score"]) for r in rows] == [
        ("d1", 0, "Marie Curie discovered radium.", 0.8),
        ("d2", 1, "Curie discovered radium.", 0.4),
    ]
    assert rows[0]["source"] == "d1.txt"
    assert rows[1]["source_offsets"] == [34, 39] and rows[1]["target_offsets"] == [51, 57]
    rows = run(source="Marie Curie", target="radium", type=None)
    assert [(r["type"], r["document"], r["score"]) for r in rows] == [
        (NSUBJ, "d1", 0.8),
        (NSUBJ, "d2", 0.4),
        (OTHER, "d1", 0.3),
    ]
    assert run(source="radium", target="Marie Curie", type=None) == []  # direction matters
    assert {r["unit"] for r in rows} == {""}
    # A typed relation: head -> dependent, each evidence sentence with its unit and offsets.
    rows = run(source="won", target="the Nobel Prize in Physics", type="obj")
    assert [(r["document"], r["sentence"], r["score"], r["unit"]) for r in rows] == [
        ("d5", "Henri Becquerel won the Nobel Prize in Physics.", 0.93, U_OBJ),
        ("d6", "Pierre Curie won the Nobel Prize in Physics too.", 0.8, U_OBJ_B),
    ]
    assert rows[0]["source_offsets"] == [16, 19] and rows[0]["target_offsets"] == [20, 46]
    assert run(source="the Nobel Prize in Physics", target="won", type=None) == []


def check_cooccurring_entities(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(min_documents=2, limit=10)
    assert [(r["entity_a"], r["entity_b"], r["documents"], sorted(r["document_ids"])) for r in rows] == [
        ("Marie Curie", "Pierre Curie", 2, ["d2", "d4"]),
        ("Paris", "Marie Curie", 2, ["d3", "d4"]),
    ]
    assert rows[1]["label_a"] == "GPE" and rows[1]["label_b"] == "PERSON"
    assert len(run(min_documents=1, limit=10)) == 5


def check_typed_relation(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(relation="obj", limit=25)
    assert [(r["head"], r["relation"], r["dependent"], r["probability"], r["count"], r["unit"]) for r in rows] == [
        ("won", "obj", "the Nobel Prize in Physics", 0.93, 2, U_OBJ),
        ("shared", "obj", "prize", 0.71, 1, U_OBJ),
    ]
    assert rows[0]["mean_probability"] == kg.g.edges[WON, NOBEL, "obj"]["score_mean"]
    # The path Browser draws: (head)-[:OBJ]->(dependent).
    assert [rows[0]["p"][0]["key"], rows[0]["p"][1], rows[0]["p"][2]["key"]] == [WON, "OBJ", NOBEL]
    assert [(r["head"], r["dependent"]) for r in run(relation="nmod:poss", limit=25)] == [("prize", "his")]
    assert len(run(relation="nsubj", limit=2)) == 2
    # Untyped ids and names outside the closed set find nothing (RELATES is never a typed relation).
    for other in ("relates", NSUBJ, "foo", "obj) DETACH DELETE n //"):
        assert run(relation=other, limit=25) == []


def check_typed_relation_types(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run()
    assert [(r["relation"], r["relationship"], r["edges"], r["evidence"], r["units"]) for r in rows] == [
        ("nsubj", "NSUBJ", 3, 3, [U_NSUBJ, U_NSUBJ_B]),
        ("obj", "OBJ", 2, 3, [U_OBJ]),
        ("nmod:poss", "NMOD_POSS", 1, 1, [U_POSS]),
    ]
    assert [r["mean_probability"] for r in rows] == [
        pytest.approx((0.97 + 0.88 + 0.9) / 3),
        pytest.approx((0.93 + 0.8 + 0.71) / 3),
        pytest.approx(0.66),
    ]
    assert [r["max_probability"] for r in rows] == [0.97, 0.93, 0.66]


def check_graph_stats(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    (row,) = run()
    summary = kg.summary()
    assert row["documents"] == summary["documents"] == 6
    assert row["spans"] == summary["nodes"] == 7 + 7
    assert row["mentions"] == summary["mentions"]
    assert row["relations"] == summary["edges"] == 8 + 6
    assert (row["typed_relations"], row["untyped_relations"]) == (6, 8)
    assert row["relation_types"] == summary["relation_types"] == 3 + 3
    assert row["evidence"] == summary["evidence"] == 9 + 7
    assert (row["entities"], row["noun_chunks"], row["words"], row["pronouns"]) == (5, 4, 3, 2)
    assert row["entity_labels"] == [
        {"label": "PERSON", "spans": 3},
        {"label": "GPE", "spans": 1},
        {"label": "ORG", "spans": 1},
    ]
    assert row["sentences"] == 7 + 3  # every sentence of the corpus cites some evidence
    # MC->radium NSUBJ and won->Nobel Prize obj have evidence from two documents
    assert row["evidence_edges"] == 8 + 1 + 6 + 1
    assert row["mention_edges"] == 3 + 4 + 3 + 3 + 7 + 3
    # Facts apart: win (twice), share, have.
    assert (row["facts"], row["predicates"], row["fact_evidence"]) == (summary["facts"], summary["predicates"], 4)
    assert (row["facts"], row["predicates"], row["fact_evidence_edges"]) == (4, 3, 4)
    assert summary["fact_evidence"] == 4


NOBEL_TEXT = "the Nobel Prize in Physics"


def check_facts_about_entity(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(entity=NOBEL_TEXT, limit=10)
    assert [(r["role"], r["subject"], r["predicate"], r["object"], r["kind"], r["count"]) for r in rows] == [
        ("object", "Henri Becquerel", "win", NOBEL_TEXT, "action", 1),
        ("object", "Pierre Curie", "win", NOBEL_TEXT, "action", 1),
    ]
    assert [r["probability"] for r in rows] == [0.97 * 0.93, 0.9 * 0.8]
    assert rows[0]["documents"] == ["d5"] and rows[0]["other_key"] == HB
    # Both directions: the prize is the object of two facts, "his" the subject of one; by key as well.
    rows = run(entity="prize", limit=10)
    assert [(r["role"], r["subject"], r["predicate"], r["kind"]) for r in rows] == [
        ("object", "his", "have", "possession"),
        ("object", "He", "share", "action"),
    ]
    assert [(r["role"], r["object"]) for r in run(entity=HIS, limit=10)] == [("subject", "prize")]
    assert len(run(entity=NOBEL, limit=1)) == 1
    # Relations are not facts: Marie Curie has many relations and no fact.
    assert run(entity="Marie Curie", limit=10) == []


def check_facts_by_predicate(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(predicate="WIN", limit=25)
    assert [(r["subject"], r["predicate"], r["object"], r["probability"], r["kind"]) for r in rows] == [
        ("Henri Becquerel", "win", NOBEL_TEXT, 0.97 * 0.93, "action"),
        ("Pierre Curie", "win", NOBEL_TEXT, 0.9 * 0.8, "action"),
    ]
    assert rows[0]["mean_probability"] == kg.g.edges[HB, NOBEL, "fact:win"]["probability_mean"]
    # The path Browser draws: (subject)-[:FACT]->(object).
    assert [rows[0]["p"][0]["key"], rows[0]["p"][1], rows[0]["p"][2]["key"]] == [HB, "FACT", NOBEL]
    assert len(run(predicate="win", limit=1)) == 1
    assert [(r["subject"], r["object"]) for r in run(predicate="have", limit=25)] == [("his", "prize")]
    # A relation name is no predicate; nor is anything else.
    for other in ("nsubj", "obj", "", "win') DETACH DELETE n //"):
        assert run(predicate=other, limit=25) == []


def check_facts_between(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(source=NOBEL_TEXT, target="Henri Becquerel")
    assert [(r["subject"], r["predicate"], r["object"], r["direction"], r["kind"], r["count"]) for r in rows] == [
        ("Henri Becquerel", "win", NOBEL_TEXT, "backward", "action", 1)
    ]
    assert rows[0]["probability"] == 0.97 * 0.93
    assert [rows[0]["p"][0]["key"], rows[0]["p"][1], rows[0]["p"][2]["key"]] == [NOBEL, "FACT", HB]
    assert [r["direction"] for r in run(source=PC, target=NOBEL_TEXT)] == ["forward"]
    # Two spans linked by relations only: no fact between them.
    assert run(source="Marie Curie", target="radium") == []
    assert run(source="prize", target="prize") == []


def check_fact_support(run: Callable[..., list[dict[str, Any]]], kg: KnowledgeGraph) -> None:
    rows = run(subject="Henri Becquerel", object=NOBEL_TEXT, predicate="win")
    assert len(rows) == 1
    row = rows[0]
    assert (row["document"], row["source"], row["sentence_index"], row["sentence"]) == (
        "d5",
        "d5.txt",
        0,
        "Henri Becquerel won the Nobel Prize in Physics.",
    )
    assert (row["probability"], row["kind"], row["predicate_offsets"]) == (0.97 * 0.93, "action", [16, 19])
    assert row["arcs"] == [
        {
            "relation": "nsubj",
            "unit": U_NSUBJ,
            "probability": 0.97,
            "head": "won",
            "dependent": "Henri Becquerel",
            "head_offsets": [16, 19],
            "dependent_offsets": [0, 15],
        },
        {
            "relation": "obj",
            "unit": U_OBJ,
            "probability": 0.93,
            "head": "won",
            "dependent": NOBEL_TEXT,
            "head_offsets": [16, 19],
            "dependent_offsets": [20, 46],
        },
    ]
    assert row["units"] == [U_NSUBJ, U_OBJ] == kg.g.edges[HB, NOBEL, "fact:win"]["units"]
    assert run(subject=HB, object=NOBEL, predicate=None) == rows
    # A possession has no predicate word; its one arc is the nmod:poss.
    (have,) = run(subject="his", object="prize", predicate=None)
    assert (have["predicate"], have["kind"], have["predicate_offsets"], have["units"]) == (
        "have",
        "possession",
        [-1, -1],
        [U_POSS],
    )
    assert [(a["relation"], a["head"], a["dependent"]) for a in have["arcs"]] == [("nmod:poss", "prize", "his")]
    # Direction matters, and the predicate must match.
    assert run(subject=NOBEL_TEXT, object="Henri Becquerel", predicate=None) == []
    assert run(subject="Henri Becquerel", object=NOBEL_TEXT, predicate="lose") == []


CHECKS: dict[str, Callable[[Callable[..., list[dict[str, Any]]], KnowledgeGraph], None]] = {
    "strongest_relations": check_strongest_relations,
    "relation_graph": check_relation_graph,
    "relation_types": check_relation_types,
    "typed_relation": check_typed_relation,
    "typed_relation_types": check_typed_relation_types,
    "paths_between": check_paths_between,
    "edge_provenance": check_edge_provenance,
    "cooccurring_entities": check_cooccurring_entities,
    "graph_stats": check_graph_stats,
    "facts_about_entity": check_facts_about_entity,
    "facts_by_predicate": check_facts_by_predicate,
    "facts_between": check_facts_between,
    "fact_support": check_fact_support,
}


def test_every_query_file_has_a_check() -> None:
    files = {p.stem for p in store.QUERIES_DIR.glob("*.cypher")}
    assert files == set(CHECKS)


@pytest.mark.parametrize("name", sorted(p.stem for p in store.QUERIES_DIR.glob("*.cypher")))
def test_query_file_header_documents_it(name: str) -> None:
    text = (store.QUERIES_DIR / f"{name}.cypher").read_text(encoding="utf-8")
    header = text.split("\n")[0]
    assert header.startswith("// What it answers:")
    assert "// Parameters:" in text
    params = sorted(set(re.findall(r"\$([a-z_]+)", store.load_query(name))))
    for p in params:  # every parameter is documented and has a :param example for Browser
        assert f"${p} (" in text, (name, p)
        assert f":param {p} =>" in text, (name, p)


@pytest.fixture(scope="module")
def corpus_db(neo4j_driver, neo4j_settings):
    from pipeline.store import clear_database

    database = neo4j_settings.database
    clear_database(neo4j_driver, database)
    assert store.upsert_analyses(neo4j_driver, database, corpus(), relation_labels=LABELS)["added"] == 6
    kg = KnowledgeGraph(relation_labels=LABELS)
    for a in corpus():
        kg.add_analysis(a)
    return neo4j_driver, database, kg


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_query_results(corpus_db, name: str) -> None:
    driver, database, kg = corpus_db
    assert (Path(store.QUERIES_DIR) / f"{name}.cypher").exists(), f"queries/{name}.cypher missing"

    def run(**params: Any) -> list[dict[str, Any]]:
        return store.run_named_query(driver, database, name, **params)

    CHECKS[name](run, kg)
