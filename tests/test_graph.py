"""KnowledgeGraph: merging across documents, exact statistics, replacement, provenance, exports."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import networkx as nx
import pytest

from pipeline.graph import PROVENANCE_FORMAT, KnowledgeGraph, Provenance, ProvenanceUnavailableError
from pipeline.graph.atomic import atomic_write, atomic_write_text
from pipeline.graph.export import json_path_for, write_outputs
from pipeline.graph.provenance import Tally
from pipeline.types import Document, DocumentAnalysis, FactArc, Span, SpanFact, SpanRelation

MC = "entity:PERSON:marie curie"
PC = "entity:PERSON:pierre curie"
RADIUM = "noun_chunk:radium"
POLONIUM = "noun_chunk:polonium"
MARRIED = "word:marry"
NSUBJ = "L2H8k12"
OTHER = "L0H1k3"

_KINDS = {"entity": "entity", "noun_chunk": "noun_chunk", "word": "word", "pronoun": "pronoun"}

# Typed relations: UD names, head -> dependent, with the id of the unit behind each.
WON = "word:win"
NOBEL = "noun_chunk:nobel prize in physics"
SHE = "pronoun:t1:she"
SHARED = "word:share"
PRIZE = "noun_chunk:prize"
U_NSUBJ = "qk:nsubj:L2A:H0c0-31"
U_NSUBJ_B = "qk:nsubj:L3A:H1c0-7"
U_OBJ = "qk:obj:L2A:H0c0-31+H1c1.8"


def build(
    doc_id: str,
    sentences: list[str],
    mentions: list[tuple[str, str, int, int]],
    relations: list[tuple[int, int, str, float]] | list[tuple[int, int, str, float, str]],
    settings: dict[str, str | int | float] | None = None,
) -> DocumentAnalysis:
    """A hand-made analysis.

    mentions: (node key, surface text, sentence index, occurrence of the text in that sentence);
    relations: (source mention, target mention, relation, score[, unit]), sentence = the source's.
    Label and kind are derived from the key ("entity:PERSON:..." -> entity, PERSON).
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
        Document(doc_id, text), bounds, spans, rels, n_tokens=len(text.split()), settings=settings or {}
    )


def typed1() -> DocumentAnalysis:
    """Typed relations (UD names, head -> dependent, units), a pronoun, and one untyped relation."""
    return build(
        "t1",
        ["Marie Curie won the Nobel Prize in Physics.", "She shared the prize."],
        [
            (MC, "Marie Curie", 0, 0),
            (WON, "won", 0, 0),
            (NOBEL, "the Nobel Prize in Physics", 0, 0),
            (SHE, "She", 1, 0),
            (SHARED, "shared", 1, 0),
            (PRIZE, "the prize", 1, 0),
        ],
        [
            (1, 0, "nsubj", 0.97, U_NSUBJ),
            (1, 2, "obj", 0.93, U_OBJ),
            (4, 3, "nsubj", 0.88, U_NSUBJ),
            (4, 5, "obj", 0.71, U_OBJ),
            (1, 2, NSUBJ, 0.4),  # an untyped subspace on the same pair: a parallel edge
        ],
    )


def typed2() -> DocumentAnalysis:
    """Another document: Marie Curie -nsubj- won again, more weakly and from another unit."""
    return build(
        "t2",
        ["Marie Curie won again."],
        [(MC, "Marie Curie", 0, 0), (WON, "won", 0, 0)],
        [(1, 0, "nsubj", 0.99, U_NSUBJ_B)],
    )


def doc1() -> DocumentAnalysis:
    return build(
        "d1",
        ["Marie Curie discovered radium.", "Marie Curie studied polonium."],
        [
            (MC, "Marie Curie", 0, 0),
            (RADIUM, "radium", 0, 0),
            (MC, "Marie Curie", 1, 0),
            (POLONIUM, "polonium", 1, 0),
        ],
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


def one_sentence(doc_id: str, score: float) -> DocumentAnalysis:
    """'Marie Curie discovered radium.' with one Marie Curie -> radium relation."""
    return build(
        doc_id,
        ["Marie Curie discovered radium."],
        [(MC, "Marie Curie", 0, 0), (RADIUM, "radium", 0, 0)],
        [(0, 1, NSUBJ, score)],
    )


def two_doc_graph(**kwargs: int) -> KnowledgeGraph:
    kg = KnowledgeGraph(**kwargs)
    assert kg.add_analysis(doc1()) == "added"
    assert kg.add_analysis(doc2()) == "added"
    return kg


def export_bytes(kg: KnowledgeGraph, tmp_path: Path, name: str) -> bytes:
    return kg.to_node_link(tmp_path / f"{name}.json").read_bytes()


def mean(*scores: float) -> float:
    return float(sum((Fraction(s) for s in scores), Fraction(0)) / len(scores))


# ── merging and statistics ───────────────────────────────────────────────────────────────────────


def test_nodes_merge_across_documents() -> None:
    kg = two_doc_graph()
    g = kg.g
    assert sorted(g.nodes) == sorted([MC, PC, RADIUM, POLONIUM, MARRIED])
    curie = g.nodes[MC]
    assert curie["mentions"] == 4
    assert curie["documents"] == ["d1", "d2"]
    # "Marie Curie" 3 times beats "Curie" once.
    assert curie["text"] == "Marie Curie"
    assert (curie["label"], curie["kind"]) == ("PERSON", "entity")
    assert g.nodes[RADIUM] == {
        "text": "radium",
        "label": "",
        "kind": "noun_chunk",
        "mentions": 2,
        "documents": ["d1", "d2"],
    }
    assert g.nodes[POLONIUM]["documents"] == ["d1"]
    assert kg.documents == {"d1": doc1().document.content_hash, "d2": doc2().document.content_hash}
    assert g.graph["documents"] == kg.documents
    assert g.graph["settings"] == {"model": "test-model", "top_k": 12}


def test_edge_statistics_are_exact() -> None:
    kg = two_doc_graph()
    g = kg.g
    # One edge per (source, relation, target): parallel edges only for different relation types.
    assert g.number_of_edges(MC, RADIUM) == 2
    assert set(g[MC][RADIUM]) == {NSUBJ, OTHER}
    edge = g.edges[MC, RADIUM, NSUBJ]
    assert edge["relation"] == NSUBJ
    assert edge["label"] == ""
    assert edge["unit"] == ""  # untyped subspaces have no unit
    assert edge["count"] == 2
    assert edge["score_max"] == 0.8
    assert edge["score_mean"] == mean(0.8, 0.4)
    assert edge["documents"] == ["d1", "d2"]
    assert edge["evidence"] == [
        {
            "document": "d1",
            "sentence_index": 0,
            "source_start": 0,
            "source_end": 11,
            "target_start": 23,
            "target_end": 29,
            "score": 0.8,
            "unit": "",
            "sentence": "Marie Curie discovered radium.",
        },
        {
            "document": "d2",
            "sentence_index": 1,
            "source_start": 34,
            "source_end": 39,
            "target_start": 51,
            "target_end": 57,
            "score": 0.4,
            "unit": "",
            "sentence": "Curie discovered radium.",
        },
    ]
    other = g.edges[MC, RADIUM, OTHER]
    assert (other["count"], other["score_max"], other["score_mean"]) == (1, 0.3, 0.3)
    assert other["documents"] == ["d1"]
    assert sorted(g.edges(keys=True)) == sorted(
        [
            (MC, RADIUM, NSUBJ),
            (MC, RADIUM, OTHER),
            (MC, POLONIUM, NSUBJ),
            (PC, MC, NSUBJ),
            (PC, MARRIED, OTHER),
        ]
    )


def test_mean_is_exact_whatever_the_ingest_order() -> None:
    # Scores whose float sum depends on the order: the mean must not.
    scores = [0.1, 0.2, 0.3, 0.7, 1e-17, 0.9]
    analyses = [one_sentence(f"doc{i}", s) for i, s in enumerate(scores)]
    forward, backward = KnowledgeGraph(), KnowledgeGraph()
    for a in analyses:
        forward.add_analysis(a)
    for a in reversed(analyses):
        backward.add_analysis(a)
    expected = mean(*scores)
    assert forward.g.edges[MC, RADIUM, NSUBJ]["score_mean"] == expected
    assert backward.g.edges[MC, RADIUM, NSUBJ]["score_mean"] == expected
    assert forward.g.edges[MC, RADIUM, NSUBJ]["count"] == len(scores)


def test_text_is_most_frequent_then_first_seen() -> None:
    kg = KnowledgeGraph()
    kg.add_analysis(build("a", ["Marie Curie won."], [(MC, "Marie Curie", 0, 0)], []))
    kg.add_analysis(build("b", ["Curie won."], [(MC, "Curie", 0, 0)], []))
    assert kg.g.nodes[MC]["text"] == "Marie Curie"  # 1 vs 1: first seen
    kg.add_analysis(build("c", ["Curie won. Curie lost."], [(MC, "Curie", 0, 0), (MC, "Curie", 0, 1)], []))
    assert kg.g.nodes[MC]["text"] == "Curie"  # 3 vs 1
    kg.remove_document("c")
    assert kg.g.nodes[MC]["text"] == "Marie Curie"


def test_self_loops_are_dropped() -> None:
    analysis = build(
        "loop",
        ["Curie, that is Marie Curie, discovered radium."],
        [(MC, "Curie", 0, 0), (MC, "Marie Curie", 0, 0), (RADIUM, "radium", 0, 0)],
        [(0, 1, NSUBJ, 0.95), (1, 0, OTHER, 0.9), (1, 2, NSUBJ, 0.5)],
    )
    kg = KnowledgeGraph()
    kg.add_analysis(analysis)
    assert nx.number_of_selfloops(kg.g) == 0
    assert list(kg.g.edges(keys=True)) == [(MC, RADIUM, NSUBJ)]
    assert kg.g.nodes[MC]["mentions"] == 2


def test_dedupe_within_a_document_keeps_the_max_score() -> None:
    # Two mentions of Marie Curie in sentence 0 both relate to radium: one evidence item, max score,
    # the winning mention's offsets. The same pair in sentence 1 is separate evidence.
    analysis = build(
        "dup",
        ["Curie, Marie Curie, discovered radium.", "Marie Curie isolated radium."],
        [
            (MC, "Curie", 0, 0),
            (MC, "Marie Curie", 0, 0),
            (RADIUM, "radium", 0, 0),
            (MC, "Marie Curie", 1, 0),
            (RADIUM, "radium", 1, 0),
        ],
        [(0, 2, NSUBJ, 0.3), (1, 2, NSUBJ, 0.7), (0, 2, NSUBJ, 0.5), (3, 4, NSUBJ, 0.2)],
    )
    kg = KnowledgeGraph()
    kg.add_analysis(analysis)
    edge = kg.g.edges[MC, RADIUM, NSUBJ]
    assert edge["count"] == 2
    assert edge["score_max"] == 0.7
    assert edge["score_mean"] == mean(0.7, 0.2)
    first = edge["evidence"][0]
    assert (first["sentence_index"], first["score"]) == (0, 0.7)
    assert (first["source_start"], first["source_end"]) == (7, 18)
    assert [e["sentence_index"] for e in edge["evidence"]] == [0, 1]


def test_evidence_is_capped_and_ordered_deterministically() -> None:
    sentences = ["Marie Curie discovered radium."] * 4
    mentions = [m for i in range(4) for m in ((MC, "Marie Curie", i, 0), (RADIUM, "radium", i, 0))]
    scores = [0.5, 0.9, 0.5, 0.1]
    b = build("b", sentences, mentions, [(2 * i, 2 * i + 1, NSUBJ, s) for i, s in enumerate(scores)])
    a = one_sentence("a", 0.5)
    kg = KnowledgeGraph(max_evidence=3)
    kg.add_analysis(b)
    kg.add_analysis(a)
    edge = kg.g.edges[MC, RADIUM, NSUBJ]
    # Statistics use all five items; evidence keeps the best three, ties by document then offsets.
    assert edge["count"] == 5
    assert edge["score_max"] == 0.9
    assert edge["score_mean"] == mean(0.5, 0.9, 0.5, 0.1, 0.5)
    kept = [(e["document"], e["sentence_index"], e["score"]) for e in edge["evidence"]]
    assert kept == [("b", 1, 0.9), ("a", 0, 0.5), ("b", 0, 0.5)]
    # Removing a document refills the cap from what is left.
    kg.remove_document("a")
    edge = kg.g.edges[MC, RADIUM, NSUBJ]
    assert [(e["document"], e["sentence_index"]) for e in edge["evidence"]] == [("b", 1), ("b", 0), ("b", 2)]
    assert edge["count"] == 4


# ── re-ingestion ─────────────────────────────────────────────────────────────────────────────────


def test_same_analysis_again_is_unchanged_and_byte_identical(tmp_path: Path) -> None:
    kg = two_doc_graph()
    before = export_bytes(kg, tmp_path, "before")
    assert kg.add_analysis(doc1()) == "unchanged"
    assert kg.add_analysis(doc2()) == "unchanged"
    assert export_bytes(kg, tmp_path, "after") == before


def test_the_same_text_analysed_otherwise_is_replaced(tmp_path: Path) -> None:
    kg = two_doc_graph()
    other = replace(doc1(), settings={"model": "test-model", "top_k": 12, "analysis_format": 99})
    assert kg.holds("d1", doc1().document.content_hash, doc1().settings)
    assert not kg.holds("d1", doc1().document.content_hash, other.settings)
    assert kg.holds("d1", doc1().document.content_hash)  # without settings: the text only
    assert kg.add_analysis(other) == "replaced"
    assert kg.add_analysis(other) == "unchanged"
    assert kg.holds("d1", doc1().document.content_hash, other.settings)
    stored = {c.document: dict(c.settings) for c in kg.provenance().contributions}
    assert stored["d1"]["analysis_format"] == 99 and "analysis_format" not in stored["d2"]


def test_changed_document_is_replaced_not_added(tmp_path: Path) -> None:
    kg = two_doc_graph()
    assert kg.add_analysis(doc2_changed()) == "replaced"
    g = kg.g
    # Marie Curie: 2 mentions from d1 + 1 from the new d2 (not 2 + 2 + 1).
    assert g.nodes[MC]["mentions"] == 3
    assert g.nodes[MC]["documents"] == ["d1", "d2"]
    # radium is now supported by d1 only.
    assert g.nodes[RADIUM]["mentions"] == 1
    assert g.nodes[RADIUM]["documents"] == ["d1"]
    radium = g.edges[MC, RADIUM, NSUBJ]
    assert (radium["count"], radium["score_max"], radium["score_mean"]) == (1, 0.8, 0.8)
    assert radium["documents"] == ["d1"]
    assert [e["document"] for e in radium["evidence"]] == ["d1"]
    # The old 0.7 evidence for Pierre -> Marie is gone, only the new one counts.
    married = g.edges[PC, MC, NSUBJ]
    assert (married["count"], married["score_max"], married["score_mean"]) == (1, 0.9, 0.9)
    assert married["evidence"][0]["sentence"] == "Pierre Curie met Marie Curie."
    # The node and edge only the old version supported are gone.
    assert MARRIED not in g
    assert not g.has_edge(PC, MARRIED)
    assert kg.documents["d2"] == doc2_changed().document.content_hash
    assert g.graph["settings"]["top_k"] == 16
    assert kg.summary() == {
        "documents": 2,
        "nodes": 4,
        "edges": 4,
        "relation_types": 2,
        "mentions": 6,
        "evidence": 4,
        "facts": 0,
        "predicates": 0,
        "fact_evidence": 0,
    }

    # Exactly what a graph that never saw the old version holds.
    fresh = KnowledgeGraph()
    fresh.add_analysis(doc1())
    fresh.add_analysis(doc2_changed())
    assert export_bytes(kg, tmp_path, "replaced") == export_bytes(fresh, tmp_path, "fresh")


def test_remove_document() -> None:
    kg = two_doc_graph()
    assert kg.remove_document("d1") is True
    assert kg.remove_document("d1") is False
    assert POLONIUM not in kg.g
    assert not kg.g.has_edge(MC, RADIUM, OTHER)
    assert kg.g.nodes[MC]["mentions"] == 2
    assert kg.g.edges[MC, RADIUM, NSUBJ]["count"] == 1
    assert list(kg.documents) == ["d2"]
    assert kg.remove_document("d2") is True
    assert kg.summary()["nodes"] == 0 and kg.summary()["edges"] == 0 and kg.g.graph["documents"] == {}


def test_invalid_analysis_leaves_the_graph_untouched(tmp_path: Path) -> None:
    kg = two_doc_graph()
    before = export_bytes(kg, tmp_path, "before")
    bad = doc2_changed()
    bad.relations.append(SpanRelation(0, 7, NSUBJ, 0.5, 0))
    with pytest.raises(ValueError, match="span"):
        kg.add_analysis(bad)
    nan = doc2_changed()
    nan.relations[0] = SpanRelation(0, 1, NSUBJ, float("nan"), 0)
    with pytest.raises(ValueError, match="finite"):
        kg.add_analysis(nan)
    assert export_bytes(kg, tmp_path, "after") == before


# ── labels, queries ──────────────────────────────────────────────────────────────────────────────


def test_relation_labels_triples_and_summary() -> None:
    kg = KnowledgeGraph(relation_labels={NSUBJ: "nsubj"})
    kg.add_analysis(doc1())
    assert kg.g.edges[MC, RADIUM, NSUBJ]["label"] == "nsubj"
    kg.add_analysis(doc2())
    assert kg.g.edges[PC, MC, NSUBJ]["label"] == "nsubj"
    kg.set_relation_labels({OTHER: "amod"})
    assert kg.g.edges[MC, RADIUM, OTHER]["label"] == "amod"
    assert kg.relation_labels == {OTHER: "amod", NSUBJ: "nsubj"}
    assert list(kg.triples()) == [
        ("Marie Curie", "nsubj", "radium", 0.8),
        ("Pierre Curie", "nsubj", "Marie Curie", 0.7),
        ("Marie Curie", "nsubj", "polonium", 0.6),
        ("Pierre Curie", "amod", "married", 0.55),
        ("Marie Curie", "amod", "radium", 0.3),
    ]
    assert kg.summary() == {
        "documents": 2,
        "nodes": 5,
        "edges": 5,
        "relation_types": 2,
        "mentions": 9,
        "evidence": 6,
        "facts": 0,
        "predicates": 0,
        "fact_evidence": 0,
    }


# ── typed relations ──────────────────────────────────────────────────────────────────────────────


def test_typed_edges_are_keyed_by_the_relation_name_and_carry_the_unit() -> None:
    kg = KnowledgeGraph()
    kg.add_analysis(typed1())
    g = kg.g
    assert set(g[WON][NOBEL]) == {"obj", NSUBJ}  # typed and untyped side by side
    edge = g.edges[WON, NOBEL, "obj"]
    # The label of a typed relation is its name, with no relation_labels entry; untyped: "" as before.
    assert (edge["relation"], edge["label"], edge["unit"]) == ("obj", "obj", U_OBJ)
    assert (g.edges[WON, NOBEL, NSUBJ]["label"], g.edges[WON, NOBEL, NSUBJ]["unit"]) == ("", "")
    assert edge["evidence"] == [
        {
            "document": "t1",
            "sentence_index": 0,
            "source_start": 12,
            "source_end": 15,
            "target_start": 16,
            "target_end": 42,
            "score": 0.93,
            "unit": U_OBJ,
            "sentence": "Marie Curie won the Nobel Prize in Physics.",
        }
    ]
    # Direction: head -> dependent.
    assert g.has_edge(WON, MC, "nsubj") and not g.has_edge(MC, WON, "nsubj")
    assert g.nodes[SHE]["kind"] == "pronoun" and g.has_edge(SHARED, SHE, "nsubj")
    assert list(kg.triples())[:3] == [
        ("won", "nsubj", "Marie Curie", 0.97),
        ("won", "obj", "the Nobel Prize in Physics", 0.93),
        ("shared", "nsubj", "She", 0.88),
    ]


def test_the_unit_is_the_strongest_evidences_and_follows_replacements() -> None:
    kg = KnowledgeGraph(max_evidence=0)  # the unit does not depend on the evidence kept
    kg.add_analysis(typed1())
    assert kg.g.edges[WON, MC, "nsubj"]["unit"] == U_NSUBJ
    kg.add_analysis(typed2())
    edge = dict(kg.g.edges[WON, MC, "nsubj"])
    assert (edge["unit"], edge["count"], edge["score_max"], edge["evidence"]) == (U_NSUBJ_B, 2, 0.99, [])
    kg.remove_document("t2")
    assert kg.g.edges[WON, MC, "nsubj"]["unit"] == U_NSUBJ
    # Whatever the order, the same edge.
    other = KnowledgeGraph(max_evidence=0)
    other.add_analysis(typed2())
    other.add_analysis(typed1())
    assert other.g.edges[WON, MC, "nsubj"] == edge


def test_a_tie_between_units_in_one_sentence_goes_to_the_smallest_unit_whatever_the_order() -> None:
    a = typed2()
    rel = a.relations[0]
    for units in ([U_NSUBJ_B, U_NSUBJ], [U_NSUBJ, U_NSUBJ_B]):
        a.relations = [SpanRelation(rel.source, rel.target, "nsubj", 0.5, 0, unit) for unit in units]
        kg = KnowledgeGraph()
        kg.add_analysis(a)
        edge = kg.g.edges[WON, MC, "nsubj"]
        assert (edge["count"], edge["unit"], [e["unit"] for e in edge["evidence"]]) == (1, U_NSUBJ, [U_NSUBJ])


def test_typed_labels_triples_and_relabelling() -> None:
    kg = KnowledgeGraph(relation_labels={NSUBJ: "amod (0.81)"})
    kg.add_analysis(typed1())
    assert kg.g.edges[WON, NOBEL, NSUBJ]["label"] == "amod (0.81)"
    # A human label for a typed relation is its label; without one (or an empty one) the name.
    kg.set_relation_labels({"obj": "object"})
    assert kg.g.edges[WON, NOBEL, "obj"]["label"] == "object"
    kg.set_relation_labels({"obj": ""})
    assert kg.g.edges[WON, NOBEL, "obj"]["label"] == "obj"
    kg.set_relation_labels({"obj": "object"})
    triples = list(kg.triples())
    # triples() names typed relations by their relation name, untyped ones by their label.
    assert ("won", "obj", "the Nobel Prize in Physics", 0.93) in triples
    assert ("won", "amod (0.81)", "the Nobel Prize in Physics", 0.4) in triples
    assert kg.summary()["relation_types"] == 3


def test_typed_graph_round_trips_exactly_through_node_link_and_graphml(tmp_path: Path) -> None:
    kg = KnowledgeGraph(max_evidence=1)
    kg.add_analysis(typed1())
    kg.add_analysis(typed2())
    original = export_bytes(kg, tmp_path, "kg")
    data = json.loads(original)
    units = {e["unit"] for c in data["qkgraph_provenance"]["contributions"] for e in c["evidence"]}
    assert units == {U_NSUBJ, U_NSUBJ_B, U_OBJ, ""}
    for loaded in (
        KnowledgeGraph.from_node_link(tmp_path / "kg.json"),
        KnowledgeGraph.from_graphml(kg.to_graphml(tmp_path / "kg.graphml", include_provenance=True)),
    ):
        assert export_bytes(loaded, tmp_path, "loaded") == original
        assert loaded.g.edges[WON, MC, "nsubj"]["unit"] == U_NSUBJ_B
        # Still exact after a removal: the unit falls back to the remaining evidence's.
        loaded.remove_document("t2")
        assert loaded.g.edges[WON, MC, "nsubj"]["unit"] == U_NSUBJ
        assert loaded.g.edges[WON, MC, "nsubj"]["evidence"][0]["unit"] == U_NSUBJ
    lean = KnowledgeGraph.from_graphml(kg.to_graphml(tmp_path / "lean.graphml"))
    for u, v, k, attrs in kg.g.edges(keys=True, data=True):
        assert lean.g.edges[u, v, k] == attrs


def test_format_1_provenance_without_units_still_loads(tmp_path: Path) -> None:
    kg = two_doc_graph()
    data = json.loads(export_bytes(kg, tmp_path, "kg"))
    block = data["qkgraph_provenance"]
    block["format"] = 1
    for contribution in block["contributions"]:
        for evidence in contribution["evidence"]:
            del evidence["unit"]
    (tmp_path / "old.json").write_text(json.dumps(data), encoding="utf-8")
    assert export_bytes(KnowledgeGraph.from_node_link(tmp_path / "old.json"), tmp_path, "new") == export_bytes(
        kg, tmp_path, "kg"
    )


# ── exports ──────────────────────────────────────────────────────────────────────────────────────


def test_node_link_is_standard_networkx(tmp_path: Path) -> None:
    kg = two_doc_graph()
    data = json.loads(kg.to_node_link(tmp_path / "g.json").read_text(encoding="utf-8"))
    g = nx.node_link_graph(data, edges="edges")
    assert isinstance(g, nx.MultiDiGraph)
    assert g.edges[MC, RADIUM, NSUBJ]["documents"] == ["d1", "d2"]
    assert g.nodes[MC]["documents"] == ["d1", "d2"]
    assert g.graph["documents"] == kg.documents
    assert sorted(g.edges(keys=True)) == sorted(kg.g.edges(keys=True))


def test_node_link_round_trip_then_replace_still_works(tmp_path: Path) -> None:
    kg = two_doc_graph(max_evidence=1)
    kg.set_relation_labels({NSUBJ: "nsubj"})
    original = export_bytes(kg, tmp_path, "original")
    loaded = KnowledgeGraph.from_node_link(tmp_path / "original.json")
    assert export_bytes(loaded, tmp_path, "loaded") == original
    assert loaded.max_evidence == 1
    assert loaded.relation_labels == {NSUBJ: "nsubj"}
    assert loaded.add_analysis(doc1()) == "unchanged"
    assert loaded.add_analysis(doc2_changed()) == "replaced"
    assert kg.add_analysis(doc2_changed()) == "replaced"
    assert export_bytes(loaded, tmp_path, "loaded2") == export_bytes(kg, tmp_path, "original2")
    assert MARRIED not in loaded.g
    assert loaded.g.nodes[MC]["mentions"] == 3


def test_graphml_is_readable_by_networkx_with_json_attributes(tmp_path: Path) -> None:
    kg = two_doc_graph()
    kg.set_relation_labels({NSUBJ: "nsubj"})
    path = kg.to_graphml(tmp_path / "g.graphml")
    g = nx.read_graphml(path, force_multigraph=True)
    assert isinstance(g, nx.MultiDiGraph)
    assert g.number_of_nodes() == 5 and g.number_of_edges() == 5
    node = g.nodes[MC]
    assert (node["text"], node["label"], node["kind"]) == ("Marie Curie", "PERSON", "entity")
    assert node["mentions"] == 4
    assert json.loads(node["documents"]) == ["d1", "d2"]
    by_relation = {(u, v, d["relation"]): d for u, v, d in g.edges(data=True)}
    edge = by_relation[(MC, RADIUM, NSUBJ)]
    assert (edge["label"], edge["count"], edge["score_max"]) == ("nsubj", 2, 0.8)
    assert edge["score_mean"] == mean(0.8, 0.4)
    assert json.loads(edge["documents"]) == ["d1", "d2"]
    evidence = json.loads(edge["evidence"])
    assert evidence == kg.g.edges[MC, RADIUM, NSUBJ]["evidence"]
    assert json.loads(g.graph["documents"]) == kg.documents
    assert json.loads(g.graph["relation_labels"]) == {NSUBJ: "nsubj"}
    assert json.loads(g.graph["settings"]) == {"model": "test-model", "top_k": 12}
    # Edge ids are unique in the file (tools expect it).
    assert len({k for _, _, k in g.edges(keys=True)}) == g.number_of_edges()


def test_graphml_round_trip(tmp_path: Path) -> None:
    kg = two_doc_graph()
    lean = KnowledgeGraph.from_graphml(kg.to_graphml(tmp_path / "lean.graphml"))
    # Everything GraphML keeps comes back, with the real keys and decoded lists.
    assert sorted(lean.g.edges(keys=True)) == sorted(kg.g.edges(keys=True))
    assert dict(lean.g.nodes(data=True)) == dict(kg.g.nodes(data=True))
    for u, v, k, data in kg.g.edges(keys=True, data=True):
        assert lean.g.edges[u, v, k] == data
    assert lean.documents == kg.documents
    assert lean.summary() == kg.summary()
    # Its node-link export is the original's minus the provenance block (the last key).
    without_provenance = export_bytes(kg, tmp_path, "kg").split(b',"qkgraph_provenance"')[0] + b"}\n"
    assert export_bytes(lean, tmp_path, "lean") == without_provenance
    # Without contributions the graph is read-only, and says so.
    assert lean.add_analysis(doc1()) == "unchanged"
    with pytest.raises(ProvenanceUnavailableError):
        lean.add_analysis(doc2_changed())
    with pytest.raises(ProvenanceUnavailableError):
        lean.remove_document("d1")

    # With include_provenance the round trip is lossless and replacement works.
    full = KnowledgeGraph.from_graphml(kg.to_graphml(tmp_path / "full.graphml", include_provenance=True))
    assert export_bytes(full, tmp_path, "full") == export_bytes(kg, tmp_path, "kg")
    assert full.add_analysis(doc2_changed()) == "replaced"
    kg.add_analysis(doc2_changed())
    assert export_bytes(full, tmp_path, "full2") == export_bytes(kg, tmp_path, "kg2")


def test_exports_are_deterministic(tmp_path: Path) -> None:
    first, second = two_doc_graph(), two_doc_graph()
    assert export_bytes(first, tmp_path, "a") == export_bytes(second, tmp_path, "b")
    graphml_a = first.to_graphml(tmp_path / "a.graphml").read_bytes()
    assert graphml_a == second.to_graphml(tmp_path / "b.graphml").read_bytes()
    # A graph that went through replace-and-back ends where a fresh one does.
    third = two_doc_graph()
    third.add_analysis(doc2_changed())
    third.add_analysis(doc2())
    assert export_bytes(third, tmp_path, "c") == export_bytes(first, tmp_path, "a")


# ── the public provenance format ─────────────────────────────────────────────────────────────────


def test_provenance_round_trips_through_json_and_rebuilds_the_graph(tmp_path: Path) -> None:
    kg = two_doc_graph(max_evidence=1)
    kg.add_analysis(doc2_changed())  # a replacement: ingest order matters for the tie-breaks
    provenance = kg.provenance()
    assert provenance is not None
    assert [c.document for c in provenance.contributions] == ["d1", "d2"]
    data = json.loads(json.dumps(provenance.to_json()))
    assert data["format"] == PROVENANCE_FORMAT
    again = Provenance.from_json(data)
    assert again.to_json() == provenance.to_json()
    rebuilt = KnowledgeGraph.from_provenance(again, relation_labels=kg.relation_labels, max_evidence=1)
    assert export_bytes(rebuilt, tmp_path, "rebuilt") == export_bytes(kg, tmp_path, "kg")
    assert rebuilt.add_analysis(doc2()) == "replaced"
    with pytest.raises(ValueError, match="unsupported qkgraph_provenance format 99"):
        Provenance.from_json({"format": 99, "contributions": []})


def test_a_graph_loaded_without_provenance_has_none(tmp_path: Path) -> None:
    lean = KnowledgeGraph.from_graphml(two_doc_graph().to_graphml(tmp_path / "lean.graphml"))
    assert lean.provenance() is None


def test_tally_most_frequent_then_first_seen_whatever_the_order() -> None:
    a, b = Tally(), Tally()
    a.add({"Curie": 1, "curie": 2}, (0,))
    a.add({"Curie": 1}, (1,))
    b.add({"Curie": 1}, (1,))  # the same additions, later document first
    b.add({"Curie": 1, "curie": 2}, (0,))
    assert a.best() == b.best() == "Curie"  # 2 : 2, and "Curie" was seen first in document 0


# ── files: write_outputs and atomic writes ───────────────────────────────────────────────────────


def test_write_outputs_writes_graphml_json_beside_it_and_html(tmp_path: Path) -> None:
    kg = two_doc_graph()
    out = tmp_path / "new" / "graph.graphml"
    written = write_outputs(kg, out, tmp_path / "view" / "graph.html", title="t")
    json_path = tmp_path / "new" / "graph.json"
    assert json_path_for(out) == json_path
    assert written == {"graphml": str(out), "json": str(json_path), "html": str(tmp_path / "view" / "graph.html")}
    assert export_bytes(KnowledgeGraph.from_node_link(json_path), tmp_path, "back") == export_bytes(kg, tmp_path, "kg")
    assert set(KnowledgeGraph.from_graphml(out).g.edges(keys=True)) == set(kg.g.edges(keys=True))
    assert "<title>t</title>" in (tmp_path / "view" / "graph.html").read_text(encoding="utf-8")
    # A .json --out writes only the JSON; no html asked, none written.
    only = tmp_path / "only.json"
    assert json_path_for(only) == only
    assert write_outputs(kg, only, None) == {"json": str(only)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.json", "kg.json", "new", "only.json", "view"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "graph.json"
    atomic_write_text(target, "old\n")

    def half_then_fail(handle: BinaryIO) -> None:
        handle.write(b"new, but only ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.json"]
    # A successful write replaces the file as a whole and keeps its permissions.
    target.chmod(0o640)
    two_doc_graph().to_node_link(target)
    assert json.loads(target.read_text(encoding="utf-8"))["qkgraph_provenance"]["format"] == PROVENANCE_FORMAT
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["graph.json"]


# ── facts ────────────────────────────────────────────────────────────────────────────────────────

PARIS = "entity:GPE:paris"
U_OBL = "qk:obl:L3A:H2c0-15"
U_CASE = "qk:case:L1A:H0c0-7"
U_POSS = "qk:nmod:poss:L1A:H3c0-15"

#: (relation, unit, probability, head mention, dependent mention) of one arc.
ArcSpec = tuple[str, str, float, int, int]


def with_facts(
    analysis: DocumentAnalysis,
    facts: list[tuple[int, int, str, str, int | None, list[ArcSpec]]],
) -> DocumentAnalysis:
    """The analysis with hand-made facts: (subject mention, object mention, predicate, kind, predicate
    mention or None, arcs); the probability is the product of the arcs', as the composer makes it, and
    the sentence the subject's. An arc's words are the mentions' offsets."""
    out = []
    for subject, obj, predicate, kind, at, arc_specs in facts:
        arcs = tuple(
            FactArc(
                relation,
                unit,
                probability,
                analysis.spans[head].start_char,
                analysis.spans[head].end_char,
                analysis.spans[dependent].start_char,
                analysis.spans[dependent].end_char,
            )
            for relation, unit, probability, head, dependent in arc_specs
        )
        probability = math.prod(arc.probability for arc in arcs)
        start, end = (-1, -1) if at is None else (analysis.spans[at].start_char, analysis.spans[at].end_char)
        out.append(
            SpanFact(subject, obj, predicate, probability, analysis.spans[subject].sent_index, kind, arcs, start, end)  # type: ignore[arg-type]
        )
    return replace(analysis, facts=out)


def fact_doc1() -> DocumentAnalysis:
    """Marie Curie won the Nobel Prize (action) and moved to Paris (oblique), with the arcs behind them."""
    analysis = build(
        "f1",
        ["Marie Curie won the Nobel Prize in Physics.", "Marie Curie moved to Paris."],
        [
            (MC, "Marie Curie", 0, 0),
            (WON, "won", 0, 0),
            (NOBEL, "the Nobel Prize in Physics", 0, 0),
            (MC, "Marie Curie", 1, 0),
            ("word:move", "moved", 1, 0),
            ("word:to", "to", 1, 0),
            (PARIS, "Paris", 1, 0),
        ],
        [(1, 0, "nsubj", 0.97, U_NSUBJ), (1, 2, "obj", 0.93, U_OBJ), (4, 3, "nsubj", 0.9, U_NSUBJ)],
    )
    return with_facts(
        analysis,
        [
            (0, 2, "win", "action", 1, [("nsubj", U_NSUBJ, 0.97, 1, 0), ("obj", U_OBJ, 0.93, 1, 2)]),
            (
                3,
                6,
                "move to",
                "oblique",
                4,
                [("nsubj", U_NSUBJ, 0.9, 4, 3), ("obl", U_OBL, 0.8, 4, 6), ("case", U_CASE, 0.75, 6, 5)],
            ),
        ],
    )


def fact_doc2(p_obj: float = 0.6, word: str = "again") -> DocumentAnalysis:
    """Marie Curie wins the prize again (weaker, a parser's obj arc), and a predicate "mark" beside a
    relation ``mark`` on the same pair of spans. ``word`` changes the text (a new version)."""
    analysis = build(
        "f2",
        [f"Marie Curie won the Nobel Prize in Physics {word}, marking Paris."],
        [
            (MC, "Marie Curie", 0, 0),
            (WON, "won", 0, 0),
            (NOBEL, "the Nobel Prize in Physics", 0, 0),
            ("word:mark", "marking", 0, 0),
            (PARIS, "Paris", 0, 0),
        ],
        [(1, 0, "nsubj", 0.99, U_NSUBJ_B), (0, 4, "mark", 0.5, "qk:mark:L1A:H1c0-3")],
    )
    return with_facts(
        analysis,
        [
            (0, 2, "win", "action", 1, [("nsubj", U_NSUBJ_B, 0.99, 1, 0), ("obj", "", p_obj, 1, 2)]),
            (0, 4, "mark", "action", 3, [("nsubj", "", 1.0, 3, 0), ("obj", "", 0.5, 3, 4)]),
        ],
    )


def fact_graph(*analyses: DocumentAnalysis, max_evidence: int = 5) -> KnowledgeGraph:
    kg = KnowledgeGraph(max_evidence=max_evidence)
    for analysis in analyses:
        kg.add_analysis(analysis)
    return kg


def test_facts_are_edges_of_their_own_kind_beside_the_relations() -> None:
    kg = fact_graph(fact_doc1(), fact_doc2())
    g = kg.g
    win = g.edges[MC, NOBEL, "fact:win"]
    p1, p2 = 0.97 * 0.93, 0.99 * 0.6
    assert {k: win[k] for k in win if k != "evidence"} == {
        "kind": "fact",
        "predicate": "win",
        "fact_kind": "action",
        "units": [U_NSUBJ, U_OBJ],  # the best item's arcs (f1), subject arc first
        "probability_max": p1,
        "probability_mean": mean(p1, p2),
        "count": 2,
        "documents": ["f1", "f2"],
    }
    assert [(e["document"], e["probability"]) for e in win["evidence"]] == [("f1", p1), ("f2", p2)]
    assert win["evidence"][0] == {
        "document": "f1",
        "sentence_index": 0,
        "subject_start": 0,
        "subject_end": 11,
        "object_start": 16,
        "object_end": 42,
        "predicate_start": 12,
        "predicate_end": 15,
        "probability": p1,
        "kind": "action",
        "arcs": [
            {
                "relation": "nsubj",
                "unit": U_NSUBJ,
                "probability": 0.97,
                "head_start": 12,
                "head_end": 15,
                "dependent_start": 0,
                "dependent_end": 11,
                "head": "won",
                "dependent": "Marie Curie",
            },
            {
                "relation": "obj",
                "unit": U_OBJ,
                "probability": 0.93,
                "head_start": 12,
                "head_end": 15,
                "dependent_start": 16,
                "dependent_end": 42,
                "head": "won",
                "dependent": "the Nobel Prize in Physics",
            },
        ],
        "sentence": "Marie Curie won the Nobel Prize in Physics.",
    }
    # The predicate "mark" and the relation mark link the same two spans and never meet.
    assert set(g[MC][PARIS]) == {"mark", "fact:mark", "fact:move to"}
    assert g.edges[MC, PARIS, "mark"]["kind"] == "relation" and g.edges[MC, PARIS, "mark"]["relation"] == "mark"
    assert g.edges[MC, PARIS, "fact:mark"]["units"] == []  # a parser's arcs have no unit
    move = g.edges[MC, PARIS, "fact:move to"]
    assert (move["fact_kind"], move["units"]) == ("oblique", [U_NSUBJ, U_OBL, U_CASE])
    assert move["evidence"][0]["sentence"] == "Marie Curie moved to Paris."  # cited by a fact only
    # Every relation edge says it is one; triples() lists relations only, facts() the facts.
    assert {d["kind"] for _, _, k, d in g.edges(keys=True, data=True) if not k.startswith("fact:")} == {"relation"}
    assert [t[1] for t in kg.triples()] == ["nsubj", "obj", "nsubj", "mark"]
    assert list(kg.facts()) == [
        (MC, "win", NOBEL, p1),
        (MC, "move to", PARIS, 0.9 * 0.8 * 0.75),
        (MC, "mark", PARIS, 0.5),
    ]
    summary = kg.summary()
    assert (summary["edges"], summary["relation_types"], summary["evidence"]) == (4, 3, 5)
    assert (summary["facts"], summary["predicates"], summary["fact_evidence"]) == (3, 3, 4)


def test_fact_self_loops_are_dropped_and_one_sentence_keeps_its_best_occurrence() -> None:
    base = fact_doc1()
    # Marie Curie (sentence 1) "be" Marie Curie (sentence 0's mention): the same key, dropped.
    loop = with_facts(base, [(3, 0, "be", "copula", 4, [("nsubj", "", 0.9, 4, 3)])]).facts
    twice = with_facts(
        base,
        [
            (0, 2, "win", "action", 1, [("nsubj", U_NSUBJ, 0.5, 1, 0)]),
            (0, 2, "win", "action", 1, [("nsubj", U_NSUBJ, 0.97, 1, 0), ("obj", U_OBJ, 0.93, 1, 2)]),
            (0, 2, "win", "action", 1, [("nsubj", U_NSUBJ, 0.25, 1, 0)]),
        ],
    ).facts
    kg = fact_graph(replace(base, facts=[*base.facts, *loop, *twice]))
    assert not kg.g.has_edge(MC, MC)
    win = kg.g.edges[MC, NOBEL, "fact:win"]
    assert (win["count"], win["probability_max"]) == (1, 0.97 * 0.93)
    assert [a["probability"] for a in win["evidence"][0]["arcs"]] == [0.97, 0.93]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"probability": 1.5}, "outside"),
        ({"probability": math.nan}, "outside"),
        ({"predicate": "  "}, "empty predicate"),
        ({"kind": "rumour"}, "kind 'rumour'"),
        ({"object": 99}, "refers to span"),
        ({"sent_index": 7}, "cites sentence"),
    ],
)
def test_a_bad_fact_is_refused_and_leaves_the_graph_untouched(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    kg = fact_graph(fact_doc1())
    before = export_bytes(kg, tmp_path, "before")
    changed = fact_doc2()
    changed = replace(changed, facts=[replace(changed.facts[0], **change), *changed.facts[1:]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        kg.add_analysis(changed)
    assert export_bytes(kg, tmp_path, "after") == before


def test_fact_aggregates_are_exact_whatever_the_order_and_after_replacement(tmp_path: Path) -> None:
    # Many documents stating the same fact with awkward probabilities: the mean is exact in any order.
    rng = random.Random(3)
    docs = [
        replace(fact_doc2(p), document=Document(f"p{i}", fact_doc2(p).document.text))
        for i, p in enumerate([0.1, 0.2, 0.3, 1 / 3, 0.7, 0.9, 1e-300, 0.15])
    ]
    orders = [docs, list(reversed(docs)), rng.sample(docs, len(docs))]
    graphs = [fact_graph(fact_doc1(), *order) for order in orders]
    means = {g.g.edges[MC, NOBEL, "fact:win"]["probability_mean"] for g in graphs}
    expected = mean(0.97 * 0.93, *(0.99 * p for p in [0.1, 0.2, 0.3, 1 / 3, 0.7, 0.9, 1e-300, 0.15]))
    assert means == {expected}
    # Replacing a document recomputes its facts: bit for bit what a graph without the old version holds.
    kg = fact_graph(fact_doc1(), fact_doc2())
    assert kg.add_analysis(fact_doc2(0.25, "anew")) == "replaced"
    assert kg.g.edges[MC, NOBEL, "fact:win"]["probability_mean"] == mean(0.97 * 0.93, 0.99 * 0.25)
    fresh = fact_graph(fact_doc1(), fact_doc2(0.25, "anew"))
    assert export_bytes(kg, tmp_path, "replaced") == export_bytes(fresh, tmp_path, "fresh")
    # A version without facts removes those only it supported, and recomputes the shared one.
    assert kg.add_analysis(replace(fact_doc2(), facts=[])) == "replaced"
    assert not kg.g.has_edge(MC, PARIS, "fact:mark") and kg.g.has_edge(MC, PARIS, "mark")
    win = kg.g.edges[MC, NOBEL, "fact:win"]
    assert (win["count"], win["documents"], win["probability_mean"]) == (1, ["f1"], 0.97 * 0.93)
    assert kg.remove_document("f1")
    assert list(kg.facts()) == []
    assert kg.summary()["facts"] == 0


def test_fact_kind_is_the_most_frequent_kind_ties_in_a_fixed_order() -> None:
    analysis = fact_doc2()
    have = [(0, 2, "have", "possession", None, [("nmod:poss", U_POSS, 0.9, 2, 0)])]
    kinds = [with_facts(replace(analysis, document=Document(f"k{i}", analysis.document.text)), have) for i in range(2)]
    action = with_facts(analysis, [(0, 2, "have", "action", 1, [("nsubj", "", 0.6, 1, 0), ("obj", "", 0.7, 1, 2)])])
    kg = fact_graph(kinds[0], action)
    assert kg.g.edges[MC, NOBEL, "fact:have"]["fact_kind"] == "action"  # 1 : 1, action comes first
    assert kg.g.edges[MC, NOBEL, "fact:have"]["units"] == [U_POSS]  # the best item's (0.9)
    assert kg.g.edges[MC, NOBEL, "fact:have"]["evidence"][0]["predicate_start"] == -1
    kg.add_analysis(kinds[1])
    assert kg.g.edges[MC, NOBEL, "fact:have"]["fact_kind"] == "possession"  # 2 : 1


def test_facts_round_trip_through_node_link_graphml_and_provenance(tmp_path: Path) -> None:
    kg = fact_graph(fact_doc1(), fact_doc2(), max_evidence=1)
    kg.add_analysis(fact_doc2(0.25, "anew"))
    original = export_bytes(kg, tmp_path, "kg")
    data = json.loads(original)
    assert data["qkgraph_provenance"]["format"] == PROVENANCE_FORMAT == 3
    assert {f["predicate"] for c in data["qkgraph_provenance"]["contributions"] for f in c["facts"]} == {
        "win",
        "move to",
        "mark",
    }
    fact_edges = [e for e in data["edges"] if e["kind"] == "fact"]
    # Canonical order: (source, target, key), relation and fact edges together.
    assert [(e["source"], e["target"], e["key"]) for e in fact_edges] == [
        (MC, PARIS, "fact:mark"),
        (MC, PARIS, "fact:move to"),
        (MC, NOBEL, "fact:win"),
    ]
    provenance = kg.provenance()
    assert provenance is not None
    for loaded in (
        KnowledgeGraph.from_node_link(tmp_path / "kg.json"),
        KnowledgeGraph.from_graphml(kg.to_graphml(tmp_path / "kg.graphml", include_provenance=True)),
        KnowledgeGraph.from_provenance(
            Provenance.from_json(json.loads(json.dumps(provenance.to_json()))), max_evidence=1
        ),
    ):
        assert export_bytes(loaded, tmp_path, "loaded") == original
        # Still exact after a removal.
        loaded.remove_document("f2")
        assert loaded.g.edges[MC, NOBEL, "fact:win"]["count"] == 1
        assert not loaded.g.has_edge(MC, PARIS, "fact:mark")
    # GraphML without provenance keeps every fact edge's attributes (units and evidence JSON-encoded).
    lean = KnowledgeGraph.from_graphml(kg.to_graphml(tmp_path / "lean.graphml"))
    assert set(lean.g.edges(keys=True)) == set(kg.g.edges(keys=True))
    for u, v, k, attrs in kg.g.edges(keys=True, data=True):
        assert lean.g.edges[u, v, k] == attrs
    assert list(lean.facts()) == list(kg.facts())
    raw = nx.read_graphml(tmp_path / "lean.graphml", force_multigraph=True)
    assert sorted(d["predicate"] for _, _, d in raw.edges(data=True) if d.get("kind") == "fact") == [
        "mark",
        "move to",
        "win",
    ]


def test_format_2_provenance_without_facts_still_loads(tmp_path: Path) -> None:
    kg = fact_graph(replace(fact_doc1(), facts=[]), replace(fact_doc2(), facts=[]))
    data = json.loads(export_bytes(kg, tmp_path, "kg"))
    block = data["qkgraph_provenance"]
    block["format"] = 2
    for contribution in block["contributions"]:
        del contribution["facts"]
    # Sentences cited only by facts are absent in such a file: none here (no facts at all).
    (tmp_path / "old.json").write_text(json.dumps(data), encoding="utf-8")
    loaded = KnowledgeGraph.from_node_link(tmp_path / "old.json")
    assert export_bytes(loaded, tmp_path, "new") == export_bytes(kg, tmp_path, "kg")
    assert loaded.summary()["facts"] == 0
    # And it can take documents with facts from then on.
    assert loaded.add_analysis(fact_doc2(0.6, "anew")) == "replaced"
    assert loaded.g.has_edge(MC, PARIS, "fact:mark")


def test_relation_labels_leave_fact_edges_alone() -> None:
    kg = fact_graph(fact_doc2())
    kg.set_relation_labels({"mark": "marker"})
    assert kg.g.edges[MC, PARIS, "mark"]["label"] == "marker"
    assert "label" not in kg.g.edges[MC, PARIS, "fact:mark"]
