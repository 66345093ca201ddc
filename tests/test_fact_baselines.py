"""The fact baselines of bench/fact_baselines.py (proximity, MAMA-style) on real spaCy and the real
default model (all-MiniLM-L6-v2), loaded once for the module."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from pipeline.text.nlp import load_spacy
from pipeline.text.spans import document_words

_PATH = Path(__file__).resolve().parents[1] / "bench" / "fact_baselines.py"
_spec = importlib.util.spec_from_file_location("fact_baselines", _PATH)
assert _spec is not None and _spec.loader is not None
fb = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fb  # dataclasses look their module up there
_spec.loader.exec_module(fb)  # by file path, as the evaluation imports it

CURIE = "Marie Curie won the Nobel Prize."


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


@pytest.fixture(scope="module")
def attention():
    return fb.default_attention_fn()


def _triples(doc, facts):
    w = document_words(doc)
    return {
        (w[f.subject].text, w[f.predicate_word].text if f.predicate_word >= 0 else "", f.predicate, w[f.object].text)
        for f in facts
    }


def test_proximity_action(nlp) -> None:
    doc = nlp(CURIE)
    facts = fb.proximity_facts(doc)
    assert _triples(doc, facts) == {("Curie", "won", "win", "Prize")}
    (f,) = facts
    assert (f.preposition, f.kind, f.probability, f.arcs) == (-1, "action", 1.0, ())


def test_proximity_oblique_and_copula(nlp) -> None:
    doc = nlp("She moved to Paris. Curie was a physicist.")
    w = document_words(doc)
    by_kind = {f.kind: f for f in fb.proximity_facts(doc)}
    obl, cop = by_kind["oblique"], by_kind["copula"]
    assert (w[obl.subject].text, w[obl.preposition].text, w[obl.object].text, obl.predicate) == (
        "She",
        "to",
        "Paris",
        "move to",
    )
    assert (w[cop.subject].text, w[cop.predicate_word].text, w[cop.object].text, cop.preposition) == (
        "Curie",
        "was",
        "physicist",
        -1,
    )


def test_word_attention_shape(nlp, attention) -> None:
    doc = nlp("Radioactivity was unexplained. Marie Curie won the Nobel Prize.")
    sents = list(doc.sents)
    many = attention.many(sents)
    for sent, att in zip(sents, many):
        n = sum(1 for t in sent if not t.is_space)
        assert att.shape == (n, n)
        assert (att >= 0).all() and (att.sum(1) <= 1 + 1e-5).all()  # [CLS]/[SEP] mass is dropped
    np.testing.assert_allclose(attention(sents[1]), many[1], atol=1e-5)  # padding does not change it


def test_mama_candidate_curie(nlp, attention) -> None:
    doc = nlp(CURIE)
    cands = fb.mama_candidates([doc], attention)
    w = document_words(doc)
    won = next(i for i, x in enumerate(w) if x.text == "won")
    (c,) = [c for c in cands if (w[c.head].text, w[c.tail].text) == ("Curie", "Prize")]
    assert won in c.path and c.path == (won,) and c.degree > 0
    assert (c.relation, c.predicate_word, c.preposition, c.kind, c.rank, c.contiguous) == (
        "win",
        won,
        -1,
        "action",
        0,
        True,
    )
    # the direction convention: head chunk -> won reads att[won, Marie + Curie], won -> tail reads the
    # tail chunk's rows (mean over "the Nobel Prize") at column won
    att = attention(next(iter(doc.sents)))
    expected = att[won, 0:2].sum() + att[3:6, won].mean()
    assert c.degree == pytest.approx(float(expected), rel=1e-5)


def test_mama_beam_width(nlp, attention) -> None:
    docs = [nlp("She moved from Warsaw to Paris in 1891 with her older sister.")]
    with pytest.raises(ValueError):
        fb.mama_candidates(docs, attention, beam=0)
    for beam in (1, 3):
        cands = fb.mama_candidates(docs, attention, beam=beam)
        per_pair = Counter((c.head, c.tail) for c in cands)
        assert per_pair and max(per_pair.values()) <= beam
        for pair in per_pair:
            found = sorted((c for c in cands if (c.head, c.tail) == pair), key=lambda c: c.rank)
            assert [c.rank for c in found] == list(range(len(found)))
            assert all(a.degree >= b.degree for a, b in pairwise(found))
    wide = fb.mama_candidates(docs, attention, beam=3)
    assert max(Counter((c.head, c.tail) for c in wide).values()) > 1  # a wider beam finds more paths


def test_mama_facts_thresholds(nlp, attention) -> None:
    docs = [nlp(CURIE), nlp("Pierre won the race."), nlp("She moved to Paris.")]
    cands = fb.mama_candidates(docs, attention)
    every = fb.mama_facts(cands, 0.0, 1)  # positional, as the evaluation calls it
    assert len(every) == 3 and all(every)
    # one list per document searched, also for documents without candidates
    assert fb.mama_facts(fb.mama_candidates([*docs, nlp("Hello.")], attention))[3] == []
    assert {f.predicate for f in every[0]} == {"win"} and every[0][0].probability > 0
    # frequency: "win" is the relation of two pairs, Paris's relation of one
    frequent = fb.mama_facts(cands, min_frequency=2, n_docs=3)
    assert [len(x) for x in frequent] == [1, 1, 0]
    # degree: a threshold between the facts' degrees keeps those at or above it
    degrees = sorted(f.probability for doc in every for f in doc)
    cut = degrees[len(degrees) // 2]
    kept = fb.mama_facts(cands, min_degree=cut, n_docs=3)
    assert sorted(f.probability for doc in kept for f in doc) == [d for d in degrees if d >= cut]
    assert fb.mama_facts(cands, min_degree=degrees[-1] + 1, n_docs=3) == [[], [], []]


def test_mama_facts_contiguity_and_best_of_pair() -> None:
    def cand(rank: int, path: tuple[int, ...], degree: float, relation: str) -> object:
        contiguous = all(b == a + 1 for a, b in pairwise(path))
        return fb.MamaCandidate(0, 0, 0, 9, path, relation, degree, rank, contiguous, path[0], -1, "action")

    cands = [cand(0, (2, 5), 0.9, "a b"), cand(1, (2, 3), 0.5, "a c")]
    (f,) = fb.mama_facts(cands)[0]
    assert (f.predicate, f.probability) == ("a c", 0.5)  # the best contiguous path of the pair
    (f,) = fb.mama_facts(cands, contiguous=False)[0]
    assert (f.predicate, f.probability) == ("a b", 0.9)


def test_attention_reuses_a_loaded_model(attention) -> None:
    class Models:  # the shape of ingest.models.Models: the loaded model sits in .extractor
        extractor = attention

    again = fb.default_attention_fn(Models(), layer=0)
    assert again.model is attention.model and again.layer == 0 and attention.layer == 5
    with pytest.raises(ValueError):
        fb.default_attention_fn(Models(), layer=6)
