"""Facts: the composer's rules, spaCy's and gold arcs, the product's facts, and eval-facts' scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.relations.facts import (
    MAX_SHARING_DEPTH,
    Arc,
    calibrate_facts,
    calibration_group,
    compose_facts,
    gold_facts,
    group_knots,
    lift_facts,
    spacy_arcs,
)
from pipeline.types import Span, Word

EWT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"


def _words(text: str, pos: list[str], lemmas: list[str] | None = None) -> list[Word]:
    out, at = [], 0
    for i, w in enumerate(text.split()):
        start = text.index(w, at)
        at = start + len(w)
        out.append(Word(start, at, 0, w, (lemmas or text.split())[i], pos[i]))
    return out


def _triples(words, facts):
    return [(words[f.subject].text, f.predicate, words[f.object].text, f.kind) for f in facts]


def test_compose_action_oblique_particle_and_product():
    #        0     1     2   3     4       5  6
    text = "Curie set up the laboratory in Paris"
    w = _words(text, ["PROPN", "VERB", "ADP", "DET", "NOUN", "ADP", "PROPN"])
    arcs = [
        Arc(1, 0, "nsubj", 0.9, "u-nsubj"),
        Arc(1, 2, "compound:prt", 0.8, "u-prt"),
        Arc(1, 4, "obj", 0.5, "u-obj"),
        Arc(1, 6, "obl", 0.6, "u-obl"),
        Arc(6, 5, "case", 0.95, "u-case"),
    ]
    facts = compose_facts(w, arcs)
    assert _triples(w, facts) == [
        ("Curie", "set up", "laboratory", "action"),
        ("Curie", "set up in", "Paris", "oblique"),
    ]
    action, oblique = facts
    assert math.isclose(action.probability, 0.9 * 0.8 * 0.5)
    assert math.isclose(oblique.probability, 0.9 * 0.8 * 0.6 * 0.95)
    assert [a.relation for a in oblique.arcs] == ["nsubj", "compound:prt", "obl", "case"]
    assert oblique.predicate_word == 1 and oblique.preposition == 5
    # an obl without a case word states nothing; an arc under the floor is not composed
    no_case = [a for a in arcs if a.relation != "case"]
    assert [f.kind for f in compose_facts(w, no_case)] == ["action"]
    low = [Arc(1, 0, "nsubj", 0.02), Arc(1, 4, "obj", 0.9)]
    assert compose_facts(w, low) == []  # under FACT_ARC_FLOOR
    assert len(compose_facts(w, low, floor=0.01)) == 1
    # an object with a case word of its own is the oblique the case word marks
    (moved,) = compose_facts(w, [Arc(1, 0, "nsubj", 0.9), Arc(1, 6, "obj", 0.5), Arc(6, 5, "case", 0.9)])
    assert (moved.predicate, moved.kind, moved.preposition) == ("set in", "oblique", 5)


def test_compose_one_subject_per_predicate_passive_copula_possession():
    #        0      1   2     3  4
    text = "Curie was born in Warsaw"
    w = _words(text, ["PROPN", "AUX", "VERB", "ADP", "PROPN"], ["Curie", "be", "bear", "in", "Warsaw"])
    arcs = [Arc(2, 0, "nsubj:pass", 0.9), Arc(2, 4, "obl", 0.9), Arc(4, 3, "case", 0.9)]
    assert _triples(w, compose_facts(w, arcs)) == [("Curie", "be born in", "Warsaw", "oblique")]
    # two subject candidates for one predicate: the more probable one only
    two = [*arcs, Arc(2, 4, "nsubj", 0.95)]
    facts = compose_facts(w, [a for a in two if a.relation not in ("obl", "case")] + [Arc(2, 0, "obj", 0.5)])
    assert {(w[f.subject].text, w[f.object].text) for f in facts} == {("Warsaw", "Curie")}

    #         0     1   2  3
    text = "Curie was a physicist"
    w = _words(text, ["PROPN", "AUX", "DET", "NOUN"], ["Curie", "be", "a", "physicist"])
    facts = compose_facts(w, [Arc(3, 0, "nsubj", 0.8), Arc(3, 1, "cop", 0.9)])
    assert _triples(w, facts) == [("Curie", "be", "physicist", "copula")]
    assert facts[0].predicate_word == 1  # the copula is the predicate word

    #         0     1   2
    text = "Curie 's laboratory"
    w = _words(text, ["PROPN", "PART", "NOUN"])
    facts = compose_facts(w, [Arc(2, 0, "nmod:poss", 0.7)])
    assert _triples(w, facts) == [("Curie", "have", "laboratory", "possession")]
    assert facts[0].predicate_word == -1


def test_compose_shares_subjects_through_xcomp_and_conj():
    #        0     1     2   3   4    5
    text = "I decided to move the group"
    w = _words(text, ["PRON", "VERB", "PART", "VERB", "DET", "NOUN"], ["I", "decide", "to", "move", "the", "group"])
    arcs = [Arc(1, 0, "nsubj", 0.9), Arc(1, 3, "xcomp", 0.8), Arc(3, 5, "obj", 0.7), Arc(3, 2, "mark", 0.9)]
    (fact,) = compose_facts(w, arcs)
    assert _triples(w, [fact]) == [("I", "move", "group", "action")]
    assert [a.relation for a in fact.arcs] == ["nsubj", "xcomp", "obj"]  # the chain is part of its support
    assert math.isclose(fact.probability, 0.9 * 0.8 * 0.7)
    # a subject of its own wins over the shared one
    own = compose_facts(w, [*arcs, Arc(3, 4, "nsubj", 0.3)])
    assert ("I", "move", "group", "action") not in _triples(w, own)

    # object control: the head's object is the subject of the xcomp clause, not the head's subject
    #        0     1    2  3   4    5   6
    text = "They asked me to sign the form"
    w = _words(
        text, ["PRON", "VERB", "PRON", "PART", "VERB", "DET", "NOUN"], ["they", "ask", "I", "to", "sign", "the", "form"]
    )
    arcs = [Arc(1, 0, "nsubj", 0.9), Arc(1, 2, "obj", 0.8), Arc(1, 4, "xcomp", 0.7), Arc(4, 6, "obj", 0.9)]
    assert set(_triples(w, compose_facts(w, arcs))) == {
        ("They", "ask", "me", "action"),
        ("me", "sign", "form", "action"),
    }

    # conj: the first conjunct's subject; a chain of xcomps; the passive of the clause's own aux:pass
    #        0       1        2     3   4   5    6
    text = "She discovered radium and won the prize"
    w = _words(
        text,
        ["PRON", "VERB", "NOUN", "CCONJ", "VERB", "DET", "NOUN"],
        ["she", "discover", "radium", "and", "win", "the", "prize"],
    )
    arcs = [Arc(1, 0, "nsubj", 0.9), Arc(1, 2, "obj", 0.9), Arc(1, 4, "conj", 0.8), Arc(4, 6, "obj", 0.9)]
    assert _triples(w, compose_facts(w, arcs)) == [
        ("She", "discover", "radium", "action"),
        ("She", "win", "prize", "action"),
    ]
    #        0    1    2   3   4   5   6    7
    text = "She wants to try to win the prize"
    w = _words(
        text,
        ["PRON", "VERB", "PART", "VERB", "PART", "VERB", "DET", "NOUN"],
        ["she", "want", "to", "try", "to", "win", "the", "prize"],
    )
    arcs = [Arc(1, 0, "nsubj", 0.9), Arc(1, 3, "xcomp", 0.9), Arc(3, 5, "xcomp", 0.9), Arc(5, 7, "obj", 0.9)]
    (fact,) = compose_facts(w, arcs)
    assert _triples(w, [fact]) == [("She", "win", "prize", "action")]
    assert [a.relation for a in fact.arcs] == ["nsubj", "xcomp", "xcomp", "obj"]
    #        0   1    2  3      4      5   6    7
    text = "He wants to be promoted by the board"
    w = _words(
        text,
        ["PRON", "VERB", "PART", "AUX", "VERB", "ADP", "DET", "NOUN"],
        ["he", "want", "to", "be", "promote", "by", "the", "board"],
    )
    arcs = [
        Arc(1, 0, "nsubj", 0.9),
        Arc(1, 4, "xcomp", 0.9),
        Arc(4, 3, "aux:pass", 0.9),
        Arc(4, 7, "obl", 0.9),
        Arc(7, 5, "case", 0.9),
    ]
    assert _triples(w, compose_facts(w, arcs)) == [("He", "be promoted by", "board", "oblique")]
    # a shared copula: the nominal is the object
    #        0   1    2  3  4   5
    text = "He wants to be a doctor"
    w = _words(text, ["PRON", "VERB", "PART", "AUX", "DET", "NOUN"], ["he", "want", "to", "be", "a", "doctor"])
    (cop,) = compose_facts(w, [Arc(1, 0, "nsubj", 0.9), Arc(1, 5, "xcomp", 0.9), Arc(5, 3, "cop", 0.9)])
    assert _triples(w, [cop]) == [("He", "be", "doctor", "copula")] and cop.predicate_word == 3


def test_compose_sharing_ends_on_cycles_and_at_the_depth_limit():
    # typed arcs are not a tree: two words may each be the other's xcomp
    w = _words("a b c", ["VERB", "VERB", "NOUN"])
    assert compose_facts(w, [Arc(0, 1, "xcomp", 0.9), Arc(1, 0, "xcomp", 0.9), Arc(1, 2, "obj", 0.9)]) == []
    # a chain longer than MAX_SHARING_DEPTH passes no subject down
    n = MAX_SHARING_DEPTH + 1
    w = _words(" ".join(["s", *[f"v{k}" for k in range(n + 1)], "o"]), ["PRON", *["VERB"] * (n + 1), "NOUN"])
    chain = [Arc(k + 1, k + 2, "xcomp", 0.99) for k in range(n)]
    arcs = [Arc(1, 0, "nsubj", 0.99), *chain, Arc(n + 1, n + 2, "obj", 0.99)]
    assert compose_facts(w, arcs) == []
    assert len(compose_facts(w, [a for a in arcs if a is not chain[0]] + [Arc(2, 0, "nsubj", 0.99)])) == 1


def test_a_word_with_a_case_marker_is_not_a_subject():
    #        0     1    2      3       4   5
    text = "piece for Qaeda appeared at Newsday"
    w = _words(
        text, ["NOUN", "ADP", "PROPN", "VERB", "ADP", "PROPN"], ["piece", "for", "Qaeda", "appear", "at", "Newsday"]
    )
    arcs = [
        Arc(3, 2, "nsubj", 0.9),
        Arc(2, 1, "case", 0.9),
        Arc(3, 0, "nsubj", 0.5),
        Arc(3, 5, "obl", 0.9),
        Arc(5, 4, "case", 0.9),
    ]
    assert _triples(w, compose_facts(w, arcs)) == [("piece", "appear at", "Newsday", "oblique")]
    assert compose_facts(w, [a for a in arcs if a.dependent != 0]) == []


def test_lift_drops_an_oblique_whose_case_word_is_inside_the_object_span():
    #        0     1    2   3      4       5   6
    text = "She studied at the University of Paris"
    w = _words(
        text,
        ["PRON", "VERB", "ADP", "DET", "PROPN", "ADP", "PROPN"],
        ["she", "study", "at", "the", "University", "of", "Paris"],
    )
    spans = [
        Span("pronoun:she", "She", "", "pronoun", 0, 0, 3),
        Span("entity:ORG:the university of paris", "the University of Paris", "ORG", "entity", 0, 15, 38),
    ]
    word_span = [0, -1, -1, 1, 1, 1, 1]
    arcs = [
        Arc(1, 0, "nsubj", 0.9),
        Arc(1, 4, "obl", 0.8),
        Arc(4, 2, "case", 0.9),
        Arc(1, 6, "obl", 0.7),
        Arc(6, 5, "case", 0.9),
    ]
    composed = compose_facts(w, arcs)
    assert {f.predicate for f in composed} == {"study at", "study of"}  # the composer sees two obliques
    lifted = lift_facts(composed, w, word_span, spans)
    assert [(f.subject, f.predicate, f.object) for f in lifted] == [(0, "study at", 1)]


def test_lift_needs_two_thing_spans_and_calibration_maps_probability():
    text = "Curie won the prize happily"
    w = _words(text, ["PROPN", "VERB", "DET", "NOUN", "ADV"], ["Curie", "win", "the", "prize", "happily"])
    spans = [
        Span("entity:PERSON:curie", "Curie", "PERSON", "entity", 0, 0, 5),
        Span("word:win", "won", "", "word", 0, 6, 9),
        Span("noun_chunk:prize", "the prize", "", "noun_chunk", 0, 10, 19),
    ]
    word_span = [0, 1, 2, 2, -1]
    facts = compose_facts(w, [Arc(1, 0, "nsubj", 0.8, "u1"), Arc(1, 3, "obj", 0.5, "u2")])
    lifted = lift_facts(facts, w, word_span, spans)
    assert [(f.subject, f.predicate, f.object) for f in lifted] == [(0, "win", 2)]
    fact = lifted[0]
    assert (fact.predicate_start, fact.predicate_end) == (6, 9)
    assert [(a.relation, a.unit, a.dependent_start) for a in fact.arcs] == [("nsubj", "u1", 0), ("obj", "u2", 14)]
    assert lift_facts(facts, w, word_span, spans, threshold=0.5) == []
    assert lift_facts(facts, w, [-1, 1, 2, 2, -1], spans) == []  # the subject in no span
    # a content-word span ("won") is not a thing a fact is about
    assert lift_facts(facts, w, [0, 1, 1, 1, -1], spans) == []
    knots = (np.array([0.0, 0.3, 0.5, 1.0]), np.array([0.2, 0.5, 0.9, 0.95]))
    (mapped,) = calibrate_facts(facts, {"*": knots})
    assert math.isclose(mapped.probability, float(np.interp(0.4, knots[0], knots[1])))
    # a kind with its own map uses it
    (own,) = calibrate_facts(facts, {"*": knots, "action": (np.array([0.0, 1.0]), np.array([0.1, 0.2]))})
    assert math.isclose(own.probability, 0.1 + 0.1 * 0.4)
    # a fact whose subject came through xcomp / conj reads the shared map of its kind, else its kind's
    shared = compose_facts(
        w + [Word(26, 30, 0, "x", "x", "VERB")],
        [Arc(1, 0, "nsubj", 0.8), Arc(1, 5, "conj", 0.5), Arc(5, 3, "obj", 0.5)],
    )
    (s,) = [f for f in shared if any(a.relation == "conj" for a in f.arcs)]
    assert (
        calibration_group(s.kind, s.arcs) == "action:shared" and calibration_group("action", facts[0].arcs) == "action"
    )
    maps = {
        "*": knots,
        "action": (np.array([0.0, 1.0]), np.array([0.1, 0.2])),
        "action:shared": (np.array([0.0, 1.0]), np.array([0.0, 0.1])),
    }
    (mapped_shared,) = calibrate_facts([s], maps)
    assert math.isclose(mapped_shared.probability, 0.1 * 0.2)
    assert group_knots({"*": knots}, "oblique:shared") is knots


@pytest.fixture(scope="module")
def nlp():
    from pipeline.text.nlp import load_spacy

    return load_spacy()


def test_spacy_arcs_in_ud_terms(nlp):
    from pipeline.text.spans import document_words

    cases = {
        "Marie Curie won the Nobel Prize.": ("Curie", "win", "Prize"),
        "She was born in Warsaw.": ("She", "be born in", "Warsaw"),
        "Curie was a physicist.": ("Curie", "be", "physicist"),
        "They set up a company.": ("They", "set up", "company"),
        "The company was founded by two engineers.": ("company", "be founded by", "engineers"),
        "I decided to move the group.": ("I", "move", "group"),
        "She discovered radium and won the prize.": ("She", "win", "prize"),
    }
    for text, expected in cases.items():
        doc = nlp(text)
        words = document_words(doc)
        triples = {
            (words[f.subject].text, f.predicate, words[f.object].text) for f in compose_facts(words, spacy_arcs(doc))
        }
        assert expected in triples, (text, triples)


def test_gold_facts_from_a_ud_tree():
    from pipeline.evaluation.facts import gold_fact_document
    from pipeline.text.conllu import group_documents, parse_conllu

    conllu = """# newdoc id = d1
# text = Marie Curie won the prize in Paris.
1\tMarie\tMarie\tPROPN\tNNP\t_\t2\tcompound\t_\t_
2\tCurie\tCurie\tPROPN\tNNP\t_\t3\tnsubj\t_\t_
3\twon\twin\tVERB\tVBD\t_\t0\troot\t_\t_
4\tthe\tthe\tDET\tDT\t_\t5\tdet\t_\t_
5\tprize\tprize\tNOUN\tNN\t_\t3\tobj\t_\t_
6\tin\tin\tADP\tIN\t_\t7\tcase\t_\t_
7\tParis\tParis\tPROPN\tNNP\t_\t3\tobl\t_\tSpaceAfter=No
8\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

"""
    (doc,) = group_documents(parse_conllu(conllu.splitlines(), "t.conllu"), "t")
    gold = gold_fact_document(doc)
    got = {
        (gold.words[k.subject].text, gold.words[k.predicate].text, k.preposition, gold.words[k.object].text)
        for k in gold.facts
    }
    assert got == {("Curie", "won", "", "prize"), ("Curie", "won", "in", "Paris")}
    # facts whose ends are not nominal are not gold facts
    words = [Word(0, 1, 0, "x", "x", "ADJ"), Word(2, 3, 0, "y", "y", "VERB"), Word(4, 5, 0, "z", "z", "NOUN")]
    assert gold_facts(words, [Arc(1, 0, "nsubj"), Arc(1, 2, "obj")]) == []


def test_scoring_counts_distinct_keys_against_gold():
    from pipeline.evaluation.facts import FactKey, score_claims

    gold = {FactKey("d", 1, 2, "", 4), FactKey("d", 1, 2, "in", 6), FactKey("d", 8, -1, "", 9)}
    claims = {FactKey("d", 1, 2, "", 4): 0.9, FactKey("d", 1, 2, "on", 6): 0.8, FactKey("d", 8, -1, "", 9): 0.3}
    at0 = score_claims(claims, gold)
    assert (at0.predicted, at0.correct, at0.gold) == (3, 2, 3)
    assert math.isclose(at0.f1, 2 * (2 / 3) * (2 / 3) / (4 / 3))
    at5 = score_claims(claims, gold, 0.5)
    assert (at5.predicted, at5.correct) == (2, 1)


def test_product_facts_come_from_typed_arcs_and_leave_edges_unchanged():
    """The ingest path's facts rest on typed units, and asking for facts changes no relation edge."""
    from pipeline.ingest.models import analyze_documents, load_models
    from pipeline.ingest.settings import IngestSettings
    from pipeline.relations.calibration import isotonic_predict
    from pipeline.relations.extract import RelationExtractor
    from pipeline.text.spans import parse_documents
    from pipeline.types import Document

    docs = [
        Document("a", "Siemens signed a contract with the city of Munich. They set up a company in 2019."),
        Document("b", "The league kept a large trading post."),
    ]
    models = load_models(IngestSettings(fact_threshold=0.0))
    with_facts = list(analyze_documents(docs, models))
    units = {t.id for t in models.subspaces}
    facts = [(a, f) for a in with_facts for f in a.facts]
    assert facts, "no facts at threshold 0"
    for a, f in facts:
        assert a.checked_fact(a.facts.index(f)) == f.probability
        assert all(arc.unit in units for arc in f.arcs)
        assert {a.spans[f.subject].kind, a.spans[f.object].kind} <= {"entity", "noun_chunk", "pronoun"}
        product = math.prod(arc.probability for arc in f.arcs)
        knots = None if models.fact_knots is None else group_knots(models.fact_knots, calibration_group(f.kind, f.arcs))
        expected = product if knots is None else float(isotonic_predict(knots, [product])[0])
        assert math.isclose(f.probability, expected, rel_tol=1e-9)
    signed = [(a.spans[f.subject].text, f.predicate, a.spans[f.object].text) for a, f in facts]
    assert ("Siemens", "sign", "a contract") in signed
    # without facts (the arcs then start at the edge threshold) the relation edges are the same
    rex = RelationExtractor(models.extractor, models.subspaces, threshold=models.settings.threshold)
    plain = list(rex.run(parse_documents(models.nlp, docs)))
    assert all(not x.facts for x in plain)
    assert [x.relations for x in plain] == [x.relations for x in with_facts]


@pytest.mark.skipif(not EWT_DEV.is_file(), reason="UD EWT dev is not in ../shared")
def test_eval_facts_rows_on_ewt(tmp_path, capsys):
    from pipeline.evaluation.facts import main

    code = main([str(EWT_DEV), "--max-documents", "4", "--json", "--plot", str(tmp_path / "pr.png")])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["rows"]) == {"qkgraph", "spacy", "mama", "proximity"}
    assert result["documents"] == 4 and result["gold_facts"] > 10
    for row in result["rows"].values():
        assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0
    # the supervised parser, composed the same way, finds a good share of the gold facts
    assert result["rows"]["spacy"]["recall"] > 0.3
    assert (tmp_path / "pr.png").stat().st_size > 1000
