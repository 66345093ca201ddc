"""The graph's ``qk`` relation types: per relation, the best subspace attachment chosen on the selection
part, a logistic gate on the word residuals, and an isotonic map from gate x share to precision;
then the held-out threshold sweep of the calibrated types, labelled and unlabelled."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from pipeline.evaluation.corpus import HELDOUT, REL_ALL, RELATIONS, SELECT, Corpus, arc_query_target
from pipeline.evaluation.passes import UnitSet
from pipeline.evaluation.scoring import Pick, pair_correct, pr_at, query_target
from pipeline.evaluation.units import Unit
from pipeline.relations.calibration import DEFAULT_THRESHOLD, THRESHOLDS, isotonic_fit, isotonic_predict
from pipeline.relations.gates import GATE_ON, Gate, fit_gate

ATTACHMENT_METHODS = ("attention", "rank_k", "assembled")
"""Methods whose chosen unit may be a qk type's attachment (those with an attention share)."""


@dataclass
class QkType:
    """The fitted ``qk`` type of one relation.

    Attributes:
        unit, method, direction: the attachment (its argmax gives each word's partner).
        knots: the isotonic map (xs, ys) of gate(query) x share -> precision.
        calibrated, correct, preds: per word [n_words]: calibrated score (0 without a partner),
            whether (word, partner) is a gold arc of the relation, the partner's local index (-1 none).
    """

    unit: Unit
    method: str
    direction: str
    gate: Gate
    knots: tuple[np.ndarray, np.ndarray]
    calibrated: np.ndarray
    correct: np.ndarray
    preds: np.ndarray


@dataclass
class QkFit:
    """The qk types of every relation, their report entries (``qk`` and ``qk_query`` per relation)
    and the held-out (precision, recall) of the query-only gate at the default threshold."""

    types: dict[str, QkType] = field(default_factory=dict)
    selected: dict[str, dict[str, dict]] = field(default_factory=dict)
    query_gate: dict[str, list] = field(default_factory=dict)


def _endpoint_features(f: torch.Tensor, key: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[r(i), r(j)] for the words i in ``rows`` and the words j = key[i] they attach to."""
    return torch.cat([f[rows].float(), f[key[rows]].float()], 1)


@dataclass
class _Gated:
    """A gate applied to every word: its calibration and Clark's accuracy counted where it fires."""

    knots: tuple[np.ndarray, np.ndarray]
    calibrated: np.ndarray
    accuracy: dict[int, float]


def _apply_gate(
    corpus: Corpus, rel: str, direction: str, g: np.ndarray, top: np.ndarray, preds: np.ndarray, correct: np.ndarray
) -> _Gated:
    has = preds >= 0
    score = g * top
    cal_mask = (corpus.word_split == SELECT) & has
    knots = isotonic_fit(score[cal_mask], correct[cal_mask].astype(float))
    calibrated = isotonic_predict(knots, score)
    calibrated[~has] = 0.0
    q, tgt = arc_query_target(corpus, direction)
    gated = {}
    for sp in (SELECT, HELDOUT):  # Clark's protocol, counted only where the gate fires
        am = corpus.arc_mask(rel, sp)
        gated[sp] = float(((preds[q[am]] == tgt[am]) & (g[q[am]] >= GATE_ON)).mean()) if am.any() else 0.0
    return _Gated(knots, calibrated, gated)


@dataclass(frozen=True)
class _Attachment:
    """The attachment of a relation's qk types, as the report names it."""

    rel: str
    unit: Unit
    method: str
    direction: str
    heldout: float  # the attachment's own held-out accuracy (ungated)


def _report_entry(kind: str, att: _Attachment, gate: Gate, gated: _Gated) -> dict:
    return {
        "unit": f"{'qk' if kind == 'qk' else 'qkq'}:{att.rel}:{att.unit.id}",
        "attachment": att.unit.id,
        "attachment_method": att.method,
        "direction": att.direction,
        "gate_layer": gate.layer,
        "select": round(gated.accuracy[SELECT], 4),
        "heldout": round(gated.accuracy[HELDOUT], 4),
        "attachment_heldout": att.heldout,
    }


def fit_qk_types(
    corpus: Corpus,
    units: dict[str, UnitSet],
    acc: dict[str, torch.Tensor],
    picks: dict[str, dict[str, Pick]],
    feats: dict[int, torch.Tensor],
    dirs: tuple[str, ...],
    gold_lab: set,
    by_document: bool,
) -> QkFit:
    """Fit the ``qk`` (query + key gate) and ``qk_query`` (query gate) types of every relation.

    The attachment is the best-selecting pick among ``ATTACHMENT_METHODS`` (ties: the earlier
    method). ``feats``: gate layer -> [n_words, d_model] word residuals. ``by_document``: the split
    alternates documents, so the gate's inner split groups documents in pairs of (selection) document
    numbers; otherwise every selection document is its own group.
    """
    split = corpus.word_split
    docs = np.array([corpus.sentences[k].doc for k in corpus.word_sent])
    gpos = corpus.word_offset[corpus.word_sent]
    fit_mask = (split == SELECT) & corpus.word_valid
    fm = torch.from_numpy(fit_mask)
    groups = docs[fit_mask] // 2 if by_document else docs[fit_mask]
    out = QkFit()
    for rel in RELATIONS:
        cands = [picks[rel][m] for m in ATTACHMENT_METHODS if m in picks[rel]]
        pick = max(cands, key=lambda c: c.select)
        m, ui, di = pick.method, pick.unit, pick.direction
        unit = units[m].units[ui]
        direction = dirs[di]
        preds = units[m].preds[ui].long().numpy()
        top = units[m].top_of(ui).float().numpy()
        has = preds >= 0
        key = torch.from_numpy(np.where(has, gpos + preds, np.arange(len(preds))))
        y = torch.from_numpy(query_target(corpus, rel, direction)[fit_mask])
        correct = pair_correct(corpus, preds, rel, direction, gold_lab)
        r = REL_ALL.index(rel)
        attachment = _Attachment(rel, unit, m, direction, round(float(acc[m][ui, di, HELDOUT, r]), 4))

        # endpoint gate: the query word and the word it attaches to
        features = {l: partial(_endpoint_features, f, key, fm) for l, f in feats.items()}
        gate = fit_gate(features, y, groups, endpoints="query+key")
        f = feats[gate.layer]
        g = gate.prob(torch.cat([f.float(), f[key].float()], 1)).numpy()
        gated = _apply_gate(corpus, rel, direction, g, top, preds, correct)
        out.selected[rel] = {"qk": _report_entry("qk", attachment, gate, gated)}
        out.types[rel] = QkType(unit, m, direction, gate, gated.knots, gated.calibrated, correct, preds)

        # query-side gate only, on the layer chosen for the endpoint gate
        qk_layer = gate.layer
        f = feats[qk_layer]
        qgate = fit_gate({qk_layer: lambda f=f: f[fm].float()}, y, groups, l2_grid=(1e-2,), endpoints="query")
        g = qgate.prob(feats[qgate.layer].float()).numpy()
        qgated = _apply_gate(corpus, rel, direction, g, top, preds, correct)
        out.selected[rel]["qk_query"] = _report_entry("qk_query", attachment, qgate, qgated)
        n_gold = int(corpus.arc_mask(rel, HELDOUT).sum())
        p, rc, _ = pr_at(qgated.calibrated, correct, split == HELDOUT, n_gold, DEFAULT_THRESHOLD)
        out.query_gate[rel] = [None if p is None else round(p, 4), round(rc, 4)]
    return out


def held_out_gold_pairs(corpus: Corpus, gold_unl: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The undirected gold word pairs of the held-out part."""
    split = corpus.word_split
    return {pr for pr in gold_unl if split[pr[0]] == HELDOUT}


def threshold_sweep(
    corpus: Corpus, fit: QkFit, held_unl: set[tuple[int, int]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Held-out precision/recall of the calibrated qk types over THRESHOLDS, labelled per relation
    and unlabelled (the union of their pairs, undirected), and at DEFAULT_THRESHOLD.

    Returns (sweep, calibration) as reported."""
    held = corpus.word_split == HELDOUT
    gpos = corpus.word_offset[corpus.word_sent]
    labelled: dict[str, dict[str, list]] = {}
    at_default: dict[str, list] = {}
    returned: dict[str, int] = {}
    for rel, qu in fit.types.items():
        n_gold = int(corpus.arc_mask(rel, HELDOUT).sum())
        ps, rs = [], []
        for tt in THRESHOLDS:
            p, rc, _ = pr_at(qu.calibrated, qu.correct, held, n_gold, tt)
            ps.append(None if p is None else round(p, 4))
            rs.append(round(rc, 4))
        labelled[rel] = {"precision": ps, "recall": rs}
        p, rc, n = pr_at(qu.calibrated, qu.correct, held, n_gold, DEFAULT_THRESHOLD)
        at_default[rel] = [None if p is None else round(p, 4), round(rc, 4)]
        returned[rel] = n
    # unlabelled: union of the pairs returned by all qk units
    n_gold_unl = len(held_unl)
    unlabelled_at_default = None
    ups, urs = [], []
    for tt in sorted(set(THRESHOLDS) | {DEFAULT_THRESHOLD}):
        pairs: set[tuple[int, int]] = set()
        for qu in fit.types.values():
            idx = np.nonzero(held & (qu.calibrated >= tt) & (qu.preds >= 0))[0]
            j = gpos[idx] + qu.preds[idx]
            pairs.update(zip(np.minimum(idx, j).tolist(), np.maximum(idx, j).tolist()))
        tp = len(pairs & held_unl)
        p = tp / len(pairs) if pairs else None
        rc = tp / n_gold_unl if n_gold_unl else 0.0
        if tt in THRESHOLDS:
            ups.append(None if p is None else round(p, 4))
            urs.append(round(rc, 4))
        if tt == DEFAULT_THRESHOLD:
            unlabelled_at_default = [None if p is None else round(p, 4), round(rc, 4)]
            returned["unlabelled"] = len(pairs)
    sweep = {
        "thresholds": list(THRESHOLDS),
        "labelled": labelled,
        "unlabelled": {"precision": ups, "recall": urs},
    }
    calibration = {
        "threshold": DEFAULT_THRESHOLD,
        "labelled": at_default,
        "unlabelled": unlabelled_at_default,
        "returned": returned,
        "labelled_query_gate": fit.query_gate,
    }
    return sweep, calibration
