"""The dependency evaluation (Clark et al.'s protocol): hand-counted cases, pooling, splits,
calibration, exact unit logits, and the command line's JSON on a small EWT subset."""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.evaluation.batching import WordBatch, pool_mean, pool_to, word_pooling
from pipeline.evaluation.corpus import ALL, HELDOUT, REL_ALL, SELECT, align_subwords, build_corpus, surface_words
from pipeline.evaluation.scoring import accuracy_table
from pipeline.evaluation.units import (
    HeadFactors,
    assembled_id,
    assembled_logits,
    component_logits,
    offset_predictions,
    parse_assembled_id,
    prefix_logits,
)
from pipeline.relations.calibration import isotonic_fit, isotonic_predict
from pipeline.relations.gates import Gate, fit_gate
from pipeline.relations.labels import calibrate_score, load_relation_labels

# Four sentences in three documents. Surface words (0-based) are given after each word.
# Document 0 (selection): s1, s2.  Document 1 (held out): s3.  Document 2 (selection): s4.
HAND = """\
# newdoc id = d0
# sent_id = s1
# text = The cat sat on the mat.
1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\t_\t_\t3\tnsubj\t_\t_
3\tsat\tsit\tVERB\t_\t_\t0\troot\t_\t_
4\ton\ton\tADP\t_\t_\t6\tcase\t_\t_
5\tthe\tthe\tDET\t_\t_\t6\tdet\t_\t_
6\tmat\tmat\tNOUN\t_\t_\t3\tobl\t_\tSpaceAfter=No
7\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# sent_id = s2
# text = I don't know.
1\tI\tI\tPRON\t_\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\t_\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\t_\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\t_\t_\t0\troot\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t_\t_\t4\tpunct\t_\t_

# newdoc id = d1
# sent_id = s3
# text = Big dogs bark loudly.
1\tBig\tbig\tADJ\t_\t_\t2\tamod\t_\t_
2\tdogs\tdog\tNOUN\t_\t_\t3\tnsubj\t_\t_
3\tbark\tbark\tVERB\t_\t_\t0\troot\t_\t_
4\tloudly\tloudly\tADV\t_\t_\t3\tadvmod\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# newdoc id = d2
# sent_id = s4
# text = She reads books.
1\tShe\tshe\tPRON\t_\t_\t2\tnsubj\t_\t_
2\treads\tread\tVERB\t_\t_\t0\troot\t_\t_
3\tbooks\tbook\tNOUN\t_\t_\t2\tobj\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t_\t_\t2\tpunct\t_\t_

"""


class FakeTokenizer:
    """[CLS] pieces [SEP]; a piece is \\w+ or one other character; pieces longer than 4 characters
    are cut in two (so multi-subword words occur). Offsets like a fast tokenizer's."""

    CLS, SEP = 1, 2

    def __call__(self, text, return_offsets_mapping=False, add_special_tokens=True, **_):
        offsets = []
        for m in re.finditer(r"\w+|[^\w\s]", text):
            a, b = m.span()
            if b - a > 4:
                mid = a + (b - a) // 2
                offsets += [(a, mid), (mid, b)]
            else:
                offsets.append((a, b))
        ids = [10 + i for i in range(len(offsets))]
        if add_special_tokens:
            ids = [self.CLS] + ids + [self.SEP]
            offsets = [(0, 0)] + offsets + [(0, 0)]
        out = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        return out


@pytest.fixture(scope="module")
def hand_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("hand") / "hand.conllu"
    p.write_text(HAND, "utf-8")
    return p


@pytest.fixture(scope="module")
def hand(hand_path):
    return build_corpus(hand_path, FakeTokenizer(), causal=False)


def _acc(table: torch.Tensor, rel: str, split: int, d: int = 0) -> float:
    return float(table[0, d, split, REL_ALL.index(rel)])


def test_hand_corpus_words_arcs_and_multiword_tokens(hand):
    s2 = hand.sentences[1]
    # "don't" (do + n't, one multiword token) is ONE surface word
    assert s2.spans == [(0, 1), (2, 7), (8, 12), (12, 13)]
    # its subwords don / ' / t all belong to it
    assert len(s2.members[1]) == 3
    # arcs: I->know nsubj, do->know aux, n't->know advmod (punct and root skipped)
    assert [(d, h) for _, d, h in s2.arcs] == [(0, 2), (1, 2), (1, 2)]
    assert len(hand.arc_rel) == 13
    assert [s.split for s in hand.sentences] == [SELECT, SELECT, HELDOUT, SELECT]


def test_arc_inside_a_multiword_token_is_skipped():
    class Tok:
        def __init__(self, id, start, end, head, deprel):
            self.id, self.start_char, self.end_char, self.head, self.deprel = id, start, end, head, deprel

    spans, index = surface_words([Tok(1, 0, 5, 0, "root"), Tok(2, 0, 5, 1, "advmod"), Tok(3, 6, 9, 1, "obj")])
    assert spans == [(0, 5), (6, 9)]
    assert index == [0, 0, 1]


def test_a_scorer_that_points_at_the_gold_head_scores_100(hand):
    preds = torch.full((1, hand.n_words), -1, dtype=torch.long)
    local = hand.word_local
    preds[0, torch.from_numpy(hand.arc_dep)] = torch.from_numpy(local[hand.arc_head])
    table = accuracy_table(hand, preds, causal=False)
    for rel in ("nsubj", "det", "case", "obl", "aux", "advmod", "obj", ALL):
        assert _acc(table, rel, SELECT) == 1.0, rel
    for rel in ("amod", "nsubj", "advmod", ALL):
        assert _acc(table, rel, HELDOUT) == 1.0, rel


def test_offsets_score_what_is_counted_by_hand(hand):
    plus = torch.from_numpy(offset_predictions(hand, +1, causal=False))[None]
    minus = torch.from_numpy(offset_predictions(hand, -1, causal=False))[None]
    tp, tm = accuracy_table(hand, plus, False), accuracy_table(hand, minus, False)
    # Offset +1, dependent -> head (head == dependent + 1):
    #   s1: The->cat yes, cat->sat yes, on->mat no (mat is +2), the->mat yes, mat->sat no   3/5
    #   s2: I->know no (+2), do->know yes, n't->know yes ("don't" is one word)             2/3
    #   s4: She->reads yes, books->reads no                                               1/2
    #   selection (s1, s2, s4): 6/10;  held out s3: Big->dogs yes, dogs->bark yes, loudly->bark no: 2/3
    assert _acc(tp, ALL, SELECT) == pytest.approx(6 / 10)
    assert _acc(tp, ALL, HELDOUT) == pytest.approx(2 / 3)
    assert _acc(tp, "det", SELECT) == 1.0  # The->cat, the->mat
    assert _acc(tp, "nsubj", SELECT) == pytest.approx(2 / 3)  # cat yes, I no, She yes
    assert _acc(tp, "case", SELECT) == 0.0
    # Offset -1 (head == dependent - 1): only books->reads (s4) in selection: 1/10;
    # held out: loudly->bark: 1/3
    assert _acc(tm, ALL, SELECT) == pytest.approx(1 / 10)
    assert _acc(tm, ALL, HELDOUT) == pytest.approx(1 / 3)
    assert _acc(tm, "obj", SELECT) == 1.0
    # head -> dependent with offset -1 is dependent -> head with +1: the same 6/10
    assert float(tm[0, 1, SELECT, REL_ALL.index(ALL)]) == pytest.approx(6 / 10)


def test_causal_models_judge_each_arc_from_its_later_word(hand):
    # offset -1 seen from the later word: the pair is adjacent. Selection arcs with |d - h| == 1:
    # The-cat, cat-sat, the-mat, do-know, n't-know, She-reads, books-reads = 7/10
    minus = torch.from_numpy(offset_predictions(hand, -1, causal=True))[None]
    plus = torch.from_numpy(offset_predictions(hand, +1, causal=True))[None]
    assert (plus == -1).all()  # a decoder word sees no later word
    t = accuracy_table(hand, minus, causal=True)
    assert t.shape[1] == 1
    assert _acc(t, ALL, SELECT) == pytest.approx(7 / 10)


def test_word_pooling_sums_to_subwords_and_averages_from_subwords():
    # [CLS] a b1 b2 [SEP]: word A = subword 1, word B = subwords 2 and 3
    m_sum, m_avg, cand = word_pooling([[[1], [2, 3]]], T=5, causal=False)
    att = torch.arange(25, dtype=torch.float32).view(1, 5, 5) / 100
    wb = WordBatch(
        [0],
        torch.zeros(1, 5, dtype=torch.long),
        torch.ones(1, 5),
        m_sum,
        m_avg,
        cand,
        torch.tensor([0, 0]),
        torch.tensor([0, 1]),
        torch.tensor([0, 1]),
    )
    W = pool_to(att, wb)[0]
    a = att[0]
    assert W[0, 1] == pytest.approx(float(a[1, 2] + a[1, 3]))  # TO B: summed over its subwords
    assert W[1, 0] == pytest.approx(float((a[2, 1] + a[3, 1]) / 2))  # FROM B: averaged
    assert W[1, 1] == pytest.approx(float((a[2, 2] + a[2, 3] + a[3, 2] + a[3, 3]) / 2))
    Lw = pool_mean(att, wb)[0]
    assert Lw[0, 1] == pytest.approx(float((a[1, 2] + a[1, 3]) / 2))  # logits: mean on both sides
    assert cand[0].tolist() == [[False, True], [True, False]]
    assert word_pooling([[[1], [2, 3]]], T=5, causal=True)[2][0].tolist() == [[False, False], [True, False]]


def test_subword_alignment_trims_spaces_and_shares_straddling_pieces():
    text = "go ), now"
    spans = [(0, 2), (3, 4), (4, 5), (6, 9)]
    # BPE-like offsets: "go", " )," (straddles ")" and ","), " now"
    members = align_subwords(text, [(0, 0), (0, 2), (2, 5), (5, 9)], spans)
    assert members == [[1], [2], [2], [3]]


def test_split_by_document_never_puts_a_document_on_both_sides(hand, ewt_dev_path):
    assert hand.documents(SELECT).isdisjoint(hand.documents(HELDOUT))
    ewt = build_corpus(ewt_dev_path, FakeTokenizer(), causal=False)
    sel, held = ewt.documents(SELECT), ewt.documents(HELDOUT)
    assert sel.isdisjoint(held) and len(sel | held) == 318
    assert all(s.split == s.doc % 2 for s in ewt.sentences)
    assert {s.split for s in ewt.sentences} == {SELECT, HELDOUT}
    assert ewt.counts()["nsubj"]["select"] + ewt.counts()["nsubj"]["heldout"] == 1958
    # --select-on: one file selects, the other is scored whole
    other = build_corpus(ewt_dev_path, FakeTokenizer(), causal=False, select_on=ewt_dev_path, max_sentences=50)
    assert sum(s.split == SELECT for s in other.sentences) == 50 == sum(s.split == HELDOUT for s in other.sentences)


def test_isotonic_calibration_is_monotone_and_reproduces_a_toy_case():
    knots = isotonic_fit([1, 2, 3, 4, 5, 6], [1, 0, 1, 0, 1, 1])
    # pool adjacent violators: (1, 0) -> 0.5, 0.5; then 1, 0 -> 0.5; 0.5 == 0.5 stays; then 1, 1
    assert isotonic_predict(knots, [1, 2, 3, 4, 5, 6]).tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    assert isotonic_predict(knots, [0.0, 9.0]).tolist() == pytest.approx([0.5, 1.0])  # flat outside
    rng = np.random.default_rng(0)
    x = rng.random(500)
    y = (rng.random(500) < x).astype(float)
    xs, ys = isotonic_fit(x, y)
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= -1e-12)
    grid = np.linspace(-0.1, 1.1, 101)
    assert np.all(np.diff(isotonic_predict((xs, ys), grid)) >= -1e-12)
    # ties are pooled first: equal x never gets two values
    assert isotonic_predict(isotonic_fit([1, 1, 2], [0, 1, 1]), [1.0])[0] == pytest.approx(0.5)


def test_gate_prefers_the_informative_layer_and_round_trips():
    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(400, generator=gen) < 0.3).double()
    noise = torch.randn(400, 5, generator=gen)
    informative = noise.clone()
    informative[:, 0] += 3 * y
    gate = fit_gate({0: noise, 1: informative}, y, np.arange(400) // 20)
    assert gate.layer == 1
    p = gate.prob(informative)
    assert float(p[y == 1].mean()) > 0.7 > float(p[y == 0].mean())
    again = Gate.from_json(json.loads(json.dumps(gate.to_json())))
    assert torch.allclose(again.prob(informative), p, atol=1e-5)


def test_assembled_ids_round_trip():
    comps = [(2, 0), (2, 1), (2, 2), (2, 5), (7, 3)]
    uid = assembled_id(4, comps)
    assert uid == "L4A:H2c0-2.5+H7c3"
    assert parse_assembled_id(uid) == (4, comps)


@pytest.mark.parametrize("family", ["bert", "llama", "qwen2"])
def test_unit_logits_equal_the_extractors_subspace_logits(family):
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import VOCAB, tiny

    from pipeline.model.activations import capture
    from pipeline.model.extractor import KnowledgeGraphExtractor

    ex = KnowledgeGraphExtractor(tiny(family).float())
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    acts = capture(ex.adapter, ids, torch.ones_like(ids), layers=[1])
    hf = HeadFactors(ex, 1)
    x = acts.residuals[1].float()
    H = ex.adapter.n_heads
    for k in (1, 3):
        ref = ex.subspace_logits(acts, [ex.subspace(1, h, k=k) for h in range(H)])
        assert torch.allclose(prefix_logits(hf, x, acts.rotary, k), ref, atol=1e-5)
    ref = ex.subspace_logits(acts, [ex.subspace(1, 2, [r]) for r in range(4)])
    assert torch.allclose(component_logits(hf, x, acts.rotary, 2, range(4)), ref, atol=1e-5)
    summed = assembled_logits(hf, x, acts.rotary, [(0, 1), (2, 3)])
    parts = ex.subspace_logits(acts, [ex.subspace(1, 0, [1]), ex.subspace(1, 2, [3])]).sum(0)
    assert torch.allclose(summed, parts, atol=1e-5)


def test_json_last_line_on_an_ewt_subset(ewt_dev_path, tmp_path, capsys):
    from pipeline.evaluation import main

    labels = tmp_path / "labels.json"
    plots = tmp_path / "plots"
    assert (
        main(
            [
                str(ewt_dev_path),
                "--max-sentences",
                "120",
                "--json",
                "--quiet",
                "--labels-out",
                str(labels),
                "--plots",
                str(plots),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    for m in ("offset", "attention", "logit", "qk"):
        assert m in data["macro"]
        assert isinstance(data["macro"][m], float)
    assert set(data["accuracy"]) == set(REL_ALL)
    assert all(0.0 <= data["accuracy"]["det"][m] <= 1.0 for m in ("offset", "attention", "logit", "qk"))
    assert set(data["calibration"]["labelled"]) >= {
        "nsubj",
        "obj",
        "amod",
        "det",
        "case",
        "compound",
        "aux",
        "nmod:poss",
    }
    assert len(data["calibration"]["labelled"]["det"]) == 2
    assert len(data["calibration"]["unlabelled"]) == 2
    assert out[0].startswith("### all-minilm-l6-v2")
    assert sorted(p.name for p in plots.iterdir()) == ["all-minilm-l6-v2-calibration.png", "all-minilm-l6-v2-heads.png"]
    # the label artifact
    art = json.loads(labels.read_text())
    assert art["schema"].startswith("qkgraph.relation-labels/") and art["model"] == "all-minilm-l6-v2"
    assert {"data_source", "split", "date", "accuracy_floor", "subspaces"} <= set(art)
    names = load_relation_labels("all-minilm-l6-v2", path=labels)
    for sid, text in names.items():
        assert re.fullmatch(r"[a-z:]+ \(\d\.\d\d\)", text), (sid, text)
        assert art["subspaces"][sid]["accuracy"] >= art["accuracy_floor"]
    sid = next(iter(art["subspaces"]))
    vals = [calibrate_score("all-minilm-l6-v2", sid, s, path=labels) for s in np.linspace(0, 1, 21)]
    assert all(0.0 <= v <= 1.0 for v in vals) and all(b >= a - 1e-12 for a, b in itertools.pairwise(vals))
