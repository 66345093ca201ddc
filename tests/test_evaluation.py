"""The dependency evaluation (Clark et al.'s protocol): hand-counted cases, pooling, splits,
calibration, exact unit logits, and the command line's JSON on a small EWT subset."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.evaluation.batching import WordBatch, pool_mean, pool_to, word_pooling
from pipeline.evaluation.corpus import (
    ALL,
    HELDOUT,
    REL_ALL,
    SELECT,
    align_subwords,
    build_corpus,
    gold_arc_sets,
    surface_words,
)
from pipeline.evaluation.qk import (
    RULE_MARGIN,
    RULE_RELATIONS,
    choose_gate_kind,
    head_side_of,
    orientation_accuracy,
)
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
from pipeline.relations.calibration import compress_knots, isotonic_fit, isotonic_predict
from pipeline.relations.gates import Gate, fit_gate
from pipeline.relations.labels import LABELS_SCHEMA, calibrate_score, load_relation_labels, load_typed_relations
from pipeline.relations.typed import GATE_KINDS

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


def test_decoder_orientation_is_the_selection_majority_and_is_scored_by_hand(hand_path):
    # causal: every word points at the previous word (offset -1, seen from the later word)
    hand = build_corpus(hand_path, FakeTokenizer(), causal=True)
    preds = offset_predictions(hand, -1, causal=True)
    gold_lab, _ = gold_arc_sets(hand)
    sel, held = hand.word_split == SELECT, hand.word_split == HELDOUT
    # selection det pairs cat->The, mat->the: the later word is the head
    assert head_side_of(hand, preds, "det", "visible", gold_lab, sel) == "query"
    # books->reads (obj): the earlier word is the head
    assert head_side_of(hand, preds, "obj", "visible", gold_lab, sel) == "key"
    # nsubj: cat->sat and reads->She have the later word as head; I->know is not adjacent
    assert head_side_of(hand, preds, "nsubj", "visible", gold_lab, sel) == "query"
    assert head_side_of(hand, preds, "nsubj", "dep2head", gold_lab, sel) == "key"
    assert head_side_of(hand, preds, "nsubj", "head2dep", gold_lab, sel) == "query"
    # held out (s3 "Big dogs bark loudly."): dogs->Big (amod, head later), bark->dogs (nsubj, head
    # later), loudly->bark (advmod, head earlier)
    assert orientation_accuracy(hand, preds, "amod", "query", gold_lab, held) == 1.0
    assert orientation_accuracy(hand, preds, "advmod", "query", gold_lab, held) == 0.0
    assert orientation_accuracy(hand, preds, "advmod", "key", gold_lab, held) == 1.0
    assert orientation_accuracy(hand, preds, "obj", "key", gold_lab, held) is None  # no held-out obj


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


@pytest.fixture(scope="module")
def small_run(ewt_dev_path, tmp_path_factory):
    """One command-line evaluation of the first 120 EWT dev sentences (tables, JSON, labels, plots),
    with the report it printed: the tests below share it."""
    from pipeline.evaluation.run import cli

    d = tmp_path_factory.mktemp("eval")
    labels, plots = d / "labels.json", d / "plots"
    argv = [str(ewt_dev_path), "--max-sentences", "120", "--json", "--quiet", "--labels-out", str(labels)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report = cli([*argv, "--plots", str(plots)])
    return SimpleNamespace(report=report, out=buf.getvalue().strip().splitlines(), labels=labels, plots=plots)


def test_json_last_line_on_an_ewt_subset(small_run):
    out, labels, plots = small_run.out, small_run.labels, small_run.plots
    data = json.loads(out[-1])
    for m in ("offset", "attention", "logit", "qk"):
        assert m in data["macro"]
        assert isinstance(data["macro"][m], float)
    assert set(data["accuracy"]) == set(REL_ALL)
    assert all(0.0 <= data["accuracy"]["det"][m] <= 1.0 for m in ("offset", "attention", "logit", "qk"))
    assert set(data["calibration"]["labelled"]) >= set(RULE_RELATIONS)
    assert len(data["calibration"]["labelled"]["det"]) == 2
    assert len(data["calibration"]["unlabelled"]) == 2
    gc = data["gate_comparison"]
    assert set(gc["relations"]) == set(GATE_KINDS) and gc["chosen"] == data["calibration"]["gate_kind"]
    assert out[0].startswith("### all-minilm-l6-v2")
    assert any(line.startswith("### all-minilm-l6-v2: gate kinds side by side") for line in out)
    assert sorted(p.name for p in plots.iterdir()) == ["all-minilm-l6-v2-calibration.png", "all-minilm-l6-v2-heads.png"]
    # the label artifact
    art = json.loads(labels.read_text())
    assert art["schema"] == LABELS_SCHEMA and art["model"] == "all-minilm-l6-v2"
    assert {"data_source", "split", "date", "accuracy_floor", "subspaces", "relations", "gate_kind"} <= set(art)
    names = load_relation_labels("all-minilm-l6-v2", path=labels)
    for sid, text in names.items():
        assert re.fullmatch(r"[a-z:]+ \(\d\.\d\d\)", text), (sid, text)
        assert art["subspaces"][sid]["accuracy"] >= art["accuracy_floor"]
    # the spread-ranked untyped subspaces are kept beside the typed relations
    assert any(e["kind"] == "subspace" for e in art["subspaces"].values())
    sid = next(iter(art["subspaces"]))
    vals = [calibrate_score("all-minilm-l6-v2", sid, s, path=labels) for s in np.linspace(0, 1, 21)]
    assert all(0.0 <= v <= 1.0 for v in vals) and all(b >= a - 1e-12 for a, b in itertools.pairwise(vals))


F16 = 1e-3
"""Float16 tolerance: the fit reads shares and word residuals stored in float16, the library pass
recomputes them in float32 (a float16 value in [0, 1] is within 4.9e-4 of its float32 value)."""


def test_the_fit_scores_every_word_as_the_library_pass_does(small_run):
    """The evaluation measures what ingestion runs: the fit's per-word partner, share, gate and
    calibrated score equal the library ``score_words`` pass's, for every gate kind and relation."""
    te = small_run.report.typed
    assert set(te.scores) == set(GATE_KINDS)
    for kind in GATE_KINDS:
        for rel, rf in te.fit.relations.items():
            kf, lib = rf.kinds[kind], te.scores[kind][rel]
            same = lib.partner == rf.preds
            assert same.mean() >= 0.999, (kind, rel)
            has = same & (rf.preds >= 0)
            assert np.abs(lib.share[has] - rf.top[has]).max() <= F16, (kind, rel)
            assert np.abs(lib.gate[has] - kf.gate[has]).max() <= F16, (kind, rel)
            # calibrated: the map is monotone, so the library's value lies between the map's values
            # at the fit's gate x share moved by the float16 tolerance (a knot step may sit in between)
            score = kf.gate * rf.top
            lo, hi = kf.typed.calibrate(score - 2 * F16), kf.typed.calibrate(score + 2 * F16)
            p = lib.probability
            assert np.all((p[has] >= lo[has] - 1e-6) & (p[has] <= hi[has] + 1e-6)), (kind, rel)
            assert np.mean(np.abs(p[has] - kf.calibrated[has]) <= F16) >= 0.99, (kind, rel)
            assert np.all(p[lib.partner < 0] == 0.0) and np.all(kf.calibrated[rf.preds < 0] == 0.0)


def test_the_artifact_reads_back_and_scores_like_the_evaluation(small_run, ewt_dev_path):
    """``load_typed_relations`` reads the v2 artifact; ``score_words`` with what it returns, over the
    same words, reproduces the evaluation's library pass and the held-out figures the artifact states."""
    from pipeline.evaluation.batching import batches
    from pipeline.evaluation.passes import _budget, _float_rotary
    from pipeline.evaluation.scoring import pair_correct, pr_at
    from pipeline.model.activations import capture
    from pipeline.model.adapters import load_model
    from pipeline.model.extractor import KnowledgeGraphExtractor
    from pipeline.model.units import model_mask
    from pipeline.relations.typed import score_words

    te = small_run.report.typed
    art = json.loads(small_run.labels.read_text())
    ts = load_typed_relations("all-minilm-l6-v2", path=small_run.labels)
    assert ts.gate_kind == te.chosen == art["gate_kind"] in ("subspace", "residual")
    assert list(ts.relations) == list(te.typed[te.chosen])
    assert set(ts.comparison) == set(GATE_KINDS)
    for kind in GATE_KINDS:
        for row in ts.comparison[kind].values():
            assert len(row["select"]) == 3 and len(row["heldout"]) == 3
    lm = load_model("all-minilm-l6-v2")
    ex = KnowledgeGraphExtractor(lm.model, lm.tokenizer)
    corpus = build_corpus(ewt_dev_path, lm.tokenizer, causal=False, max_sentences=120)
    typed = list(ts.relations.values())
    for t in typed:
        assert t.gate_kind == ts.gate_kind and t.gate is not None and t.gate.features == ts.gate_kind
        assert t.head_side == ("key" if t.direction == "dep2head" else "query")
        assert set(t.heldout) == {"threshold", "precision", "recall", "f1", "returned", "gold"}
    layers = sorted({t.layer for t in typed} | {t.gate_layer for t in typed})
    factors = {l: HeadFactors(ex, l) for l in {t.layer for t in typed}}
    n = corpus.n_words
    prob = {t.relation: np.zeros(n, np.float32) for t in typed}
    partner = {t.relation: np.full(n, -1) for t in typed}
    with torch.no_grad():
        for wb in batches(corpus, False, budget=_budget(ex.adapter)):
            acts = capture(ex.adapter, wb.ids, wb.mask, layers=layers)
            scores = score_words(typed, factors, acts.residuals, _float_rotary(acts), model_mask(wb.mask, False), wb)
            for rel, s in scores.items():
                prob[rel][wb.gidx.numpy()] = s.probability.numpy()
                partner[rel][wb.gidx.numpy()] = s.partner.numpy()
    gold_lab, _ = gold_arc_sets(corpus)
    held = corpus.word_split == HELDOUT
    for t in typed:
        lib = te.scores[te.chosen][t.relation]
        assert np.array_equal(partner[t.relation], lib.partner), t.relation
        assert np.allclose(prob[t.relation], lib.probability, atol=1e-5), t.relation
        correct = pair_correct(corpus, partner[t.relation], t.relation, t.direction, gold_lab)
        n_gold = int(corpus.arc_mask(t.relation, HELDOUT).sum())
        p, r, k = pr_at(prob[t.relation], correct, held, n_gold, t.heldout["threshold"])
        h = t.heldout
        assert (h["returned"], h["gold"]) == (k, n_gold), t.relation
        assert h["precision"] == (None if p is None else round(p, 4)) and h["recall"] == round(r, 4), t.relation
        assert art["relations"][t.relation]["heldout"] == h


def test_calibration_is_fitted_on_out_of_fold_gate_scores(small_run):
    te = small_run.report.typed
    for rel in ("det", "case", "amod"):
        rf = te.fit.relations[rel]
        for kind in ("subspace", "residual"):
            kf = rf.kinds[kind]
            sel = ~np.isnan(kf.oof_gate)
            # the out-of-fold gate is not the final gate, which saw every selection word
            assert not np.allclose(kf.oof_gate[sel], kf.gate[sel], atol=1e-2), (rel, kind)
            cal = sel & (rf.preds >= 0)
            knots = isotonic_fit((kf.oof_gate * rf.top)[cal], rf.correct[cal].astype(float))
            xs, ys = compress_knots(*knots)
            assert np.allclose(kf.typed.knots[0], xs) and np.allclose(kf.typed.knots[1], ys), (rel, kind)


def test_the_gate_kind_rule():
    assert choose_gate_kind({"residual": 0.625, "subspace": 0.59375})[0] == "residual"  # +3.125 points
    assert choose_gate_kind({"residual": 0.62, "subspace": 0.6})[0] == "subspace"  # +2 points
    assert choose_gate_kind({"residual": 0.5, "subspace": 0.7})[0] == "subspace"


def test_the_report_applies_the_rule_to_its_own_selection_figures(small_run):
    gc = small_run.report.gate_comparison
    te = small_run.report.typed
    sel = {k: np.mean([te.fit.relations[r].kinds[k].select["f1"] for r in RULE_RELATIONS]) for k in GATE_KINDS}
    assert gc["macro_f1"]["subspace"]["select"] == pytest.approx(sel["subspace"], abs=1e-4)
    margin = sel["residual"] - sel["subspace"]
    assert gc["chosen"] == ("residual" if margin > RULE_MARGIN else "subspace")
    for kind in GATE_KINDS:
        for rel in RULE_RELATIONS:
            row = gc["relations"][kind][rel]
            h = te.heldout[kind][rel]["at"]
            assert row["heldout"] == [h["precision"], h["recall"], h["f1"]]
