"""The graph's typed relations as the evaluation fits and scores them.

Per relation: the attachment is the best-selecting unit among ``ATTACHMENT_METHODS``; on it four gate
kinds (``pipeline.relations.typed.GATE_KINDS``) are fitted side by side, their features built by the
library's ``endpoint_features``:

    subspace  the query word's and its partner's coordinates on the unit's own relational subspace
              (x_i.U_C, x_j.V_C), x the word residual at the unit's layer
    residual  [r_l(i), r_l(j)], l chosen among the gate layers
    query     r_l(i), on the residual gate's layer
    none      no gate: the share alone is calibrated

Calibration is out of fold: the selection documents fall in two folds (the gate's inner split by
document groups); a gate fitted on one fold scores the other, and the isotonic map of gate x share is
fitted on those out-of-fold scores. The final gate is refitted on all selection words. Selection-part
figures (the ones the gate kind of the set is chosen on) use the out-of-fold gate and the map of the
other fold, so nothing in them was fitted on the words it scores.

Every held-out figure of a typed relation comes from the library pass: ``passes.pass_typed`` runs
``pipeline.relations.typed.score_words`` (what ingestion runs) over the corpus with the TypedRelation
objects as the label artifact stores them (``typed_relation_to_json`` then ``typed_relation_from_json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from pipeline.evaluation.corpus import HELDOUT, REL_ALL, RELATIONS, SELECT, Corpus, arc_query_target
from pipeline.evaluation.passes import UnitSet
from pipeline.evaluation.scoring import Pick, pair_correct, pr_at, query_target
from pipeline.evaluation.units import Unit
from pipeline.model.units import HeadFactors
from pipeline.relations.calibration import DEFAULT_THRESHOLD, THRESHOLDS, isotonic_fit, isotonic_predict
from pipeline.relations.gates import GATE_ON, fit_gate
from pipeline.relations.typed import (
    ATTACHMENT_METHODS,
    GATE_KINDS,
    TypedRelation,
    endpoint_features,
    typed_relation_from_json,
    typed_relation_to_json,
)

RULE_RELATIONS = ("nsubj", "obj", "amod", "det", "case", "compound", "aux", "nmod:poss")
"""The relations the gate kind of a set is chosen on (labelled F1 at the default threshold, averaged)."""
RULE_MARGIN = 0.03
"""The set uses ``subspace`` gates unless ``residual`` gates are better by more than this (F1, 0..1)."""
RULE = (
    f"subspace unless residual is better by more than {100 * RULE_MARGIN:.0f} points of labelled F1 at "
    f"threshold {DEFAULT_THRESHOLD} averaged over {', '.join(RULE_RELATIONS)}, on the selection part "
    "(out-of-fold gates and calibration maps)"
)
QUERY_L2 = 1e-2
"""The L2 strength of the query-only gate (on the residual gate's layer)."""
N_FOLDS = 2


@dataclass
class KindFit:
    """One gate kind fitted on a relation's attachment.

    Attributes:
        typed: the TypedRelation as the artifact stores it (held-out figures filled in after the
            library pass).
        gate: [n_words] the final gate's p on every word (1 without a gate), from the fit's word features.
        calibrated: [n_words] the fit's calibrated score of (word, partner) under ``typed`` (0 without a partner).
        oof_gate: [n_words] out-of-fold gate p on the selection words (nan elsewhere).
        oof_calibrated: [n_words] selection words: the out-of-fold score calibrated by the map of the
            other fold (0 elsewhere).
        select: precision, recall, f1, returned, gold at the default threshold on the selection part (out of fold).
        select_accuracy: Clark's accuracy on the selection part counted where the out-of-fold gate fires.
    """

    typed: TypedRelation
    gate: np.ndarray
    calibrated: np.ndarray
    oof_gate: np.ndarray
    oof_calibrated: np.ndarray
    select: dict[str, Any]
    select_accuracy: float


@dataclass(frozen=True)
class Attachment:
    """The attachment of a relation's typed relations, as the report names it."""

    rel: str
    unit: Unit
    method: str
    direction: str
    heldout: float  # the attachment's own held-out accuracy (ungated)


@dataclass
class RelationFit:
    """A relation's attachment (fit side: partner ``preds`` and ``top`` share per word from the unit
    pass, ``correct``: the pair is a gold arc of the relation) and its gate kinds."""

    attachment: Attachment
    preds: np.ndarray
    top: np.ndarray
    correct: np.ndarray
    kinds: dict[str, KindFit] = field(default_factory=dict)


@dataclass
class TypedFit:
    """The typed relations of every relation and gate kind, before the library pass."""

    relations: dict[str, RelationFit] = field(default_factory=dict)

    def typed(self, kind: str) -> dict[str, TypedRelation]:
        return {rel: rf.kinds[kind].typed for rel, rf in self.relations.items()}


def attachment_pick(picks: dict[str, Pick]) -> Pick:
    """The best-selecting pick among ATTACHMENT_METHODS (ties: the earlier method)."""
    cands = [picks[m] for m in ATTACHMENT_METHODS if m in picks]
    return max(cands, key=lambda c: c.select)


def _components(unit: Unit, d_head: int) -> tuple[tuple[int, int], ...]:
    if unit.method == "assembled":
        return tuple(unit.components)
    if unit.head is None:
        raise ValueError(f"{unit.id} has no head")
    k = d_head if unit.method == "attention" else unit.k
    if k is None:
        raise ValueError(f"{unit.id} has no rank")
    return tuple((unit.head, r) for r in range(k))


def head_side_of(corpus: Corpus, preds: np.ndarray, rel: str, direction: str, gold_lab: set, mask: np.ndarray) -> str:
    """Which end of a (query word, partner) pair is the head: ``key`` for dep2head, ``query`` for
    head2dep; for ``visible`` the majority among the pairs in ``mask`` that are gold ``rel`` arcs
    (ties: ``key``, the earlier word)."""
    if direction != "visible":
        return "key" if direction == "dep2head" else "query"
    head_q = int((mask & pair_correct(corpus, preds, rel, "head2dep", gold_lab)).sum())
    head_k = int((mask & pair_correct(corpus, preds, rel, "dep2head", gold_lab)).sum())
    return "query" if head_q > head_k else "key"


def orientation_accuracy(
    corpus: Corpus, preds: np.ndarray, rel: str, head_side: str, gold_lab: set, returned: np.ndarray
) -> float | None:
    """Share of the ``returned`` pairs that are gold ``rel`` arcs (either way) whose head is on
    ``head_side``; None when there is none."""
    head_is_query = pair_correct(corpus, preds, rel, "head2dep", gold_lab)
    gold = head_is_query | pair_correct(corpus, preds, rel, "dep2head", gold_lab)
    right = head_is_query[returned & gold] if head_side == "query" else ~head_is_query[returned & gold]
    return round(float(right.mean()), 4) if len(right) else None


def _endpoints(
    kind: str,
    f: torch.Tensor,
    key: torch.Tensor,
    rows: torch.Tensor | None,
    directions: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """The gate's features of words ``rows`` (None: every word) and the words ``key`` attaches them to."""
    q = f if rows is None else f[rows]
    p = f[key] if rows is None else f[key[rows]]
    return endpoint_features(kind, q, p, directions)


def _fold_gate(gate, X: torch.Tensor, y: torch.Tensor, groups: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Out-of-fold p on the selection rows: the gate refitted (same features, layer and L2) on one
    fold scores the other. A fold without both classes predicts its base rate."""
    out = np.zeros(len(y))
    for k in range(N_FOLDS):
        train, test = fold == k, fold != k
        if not test.any():
            continue
        yt = y[torch.from_numpy(train)]
        if not train.any() or float(yt.sum()) in (0.0, float(len(yt))):
            out[test] = float(yt.double().mean()) if train.any() else float(y.double().mean())
            continue
        g = fit_gate(
            {gate.layer: X[torch.from_numpy(train)]},
            yt,
            groups[train],
            l2_grid=(gate.l2,),
            endpoints=gate.endpoints,
            feature_kind=gate.features,
        )
        out[test] = g.prob(X[torch.from_numpy(test)]).numpy()
    return out


def _figures(scores: np.ndarray, correct: np.ndarray, mask: np.ndarray, n_gold: int, t: float) -> dict[str, Any]:
    p, r, n = pr_at(scores, correct, mask, n_gold, t)
    f1 = 0.0 if not p or not r else 2 * p * r / (p + r)
    return {
        "threshold": t,
        "precision": None if p is None else round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "returned": n,
        "gold": n_gold,
    }


def _as_shipped(t: TypedRelation) -> TypedRelation:
    """``t`` as the label artifact stores it and ingestion reads it (compressed knots, folded gate)."""
    return typed_relation_from_json(t.relation, typed_relation_to_json(t))


def fit_typed_relations(
    ex,
    corpus: Corpus,
    units: dict[str, UnitSet],
    acc: dict[str, torch.Tensor],
    picks: dict[str, dict[str, Pick]],
    feats: dict[int, torch.Tensor],
    gate_layers: list[int],
    dirs: tuple[str, ...],
    gold_lab: set,
    by_document: bool,
) -> TypedFit:
    """Fit the four gate kinds of every relation on its attachment (see the module docstring).

    ``feats``: layer -> [n_words, d_model] word residuals, for the ``gate_layers`` and every
    attachment's layer. ``by_document``: the split alternates documents, so the folds group the
    selection documents in pairs of document numbers; otherwise every document is its own group.
    """
    split = corpus.word_split
    n = corpus.n_words
    docs = np.array([corpus.sentences[k].doc for k in corpus.word_sent])
    gpos = corpus.word_offset[corpus.word_sent]
    fit_mask = (split == SELECT) & corpus.word_valid
    fm = torch.from_numpy(fit_mask)
    groups = docs[fit_mask] // 2 if by_document else docs[fit_mask]
    fold_sel = groups % N_FOLDS
    fold = np.full(n, -1)
    fold[fit_mask] = fold_sel
    select = split == SELECT
    d_head = ex.adapter.d_head
    factors: dict[int, HeadFactors] = {}
    out = TypedFit()
    for rel in RELATIONS:
        pick = attachment_pick(picks[rel])
        m, ui, di = pick.method, pick.unit, pick.direction
        unit = units[m].units[ui]
        direction = dirs[di]
        layer = unit.at_layer
        preds = units[m].preds[ui].long().numpy()
        top = units[m].top_of(ui).float().numpy()
        has = preds >= 0
        key = torch.from_numpy(np.where(has, gpos + preds, np.arange(n)))
        y = torch.from_numpy(query_target(corpus, rel, direction)[fit_mask])
        correct = pair_correct(corpus, preds, rel, direction, gold_lab)
        r = REL_ALL.index(rel)
        att = Attachment(rel, unit, m, direction, round(float(acc[m][ui, di, HELDOUT, r]), 4))
        head_side = head_side_of(corpus, preds, rel, direction, gold_lab, select)
        base = TypedRelation(
            relation=rel,
            id=f"qk:{rel}:{unit.id}",
            layer=layer,
            method=m,
            components=_components(unit, d_head),
            direction=direction,
            head_side=head_side,
            gate_kind="none",
            gate=None,
            knots=(np.array([0.0, 1.0]), np.array([0.0, 0.0])),
        )
        if layer not in factors:
            factors[layer] = HeadFactors(ex, layer)
        uv = base.directions(factors[layer])
        rf = RelationFit(att, preds, top, correct)
        am = corpus.arc_mask(rel, SELECT)
        q, tgt = arc_query_target(corpus, direction)
        n_gold_sel = int(am.sum())
        residual_layer = None
        for kind in ("residual", "query", "subspace", "none"):
            gate = None
            if kind != "none":
                dirs_k = uv if kind == "subspace" else None
                if kind == "residual":
                    candidates = {l: partial(_endpoints, kind, feats[l], key, fm, None) for l in gate_layers}
                    gate = fit_gate(candidates, y, groups, endpoints="query+key", feature_kind=kind)
                    residual_layer = gate.layer
                elif kind == "query":
                    assert residual_layer is not None
                    candidates = {residual_layer: partial(_endpoints, kind, feats[residual_layer], key, fm, None)}
                    gate = fit_gate(candidates, y, groups, l2_grid=(QUERY_L2,), endpoints="query", feature_kind=kind)
                else:
                    candidates = {layer: partial(_endpoints, kind, feats[layer], key, fm, uv)}
                    gate = fit_gate(candidates, y, groups, endpoints="query+key", feature_kind=kind)
                X_sel = _endpoints(kind, feats[gate.layer], key, fm, dirs_k)
                oof_sel = _fold_gate(gate, X_sel, y, groups, fold_sel)
            else:
                oof_sel = np.ones(int(fit_mask.sum()))
            oof_gate = np.full(n, np.nan)
            oof_gate[fit_mask] = oof_sel
            oof_score = np.zeros(n)
            oof_score[fit_mask] = oof_sel * top[fit_mask]
            cal = fit_mask & has
            knots = isotonic_fit(oof_score[cal], correct[cal].astype(float))
            oof_cal = np.zeros(n)
            for k in range(N_FOLDS):
                src, dst = cal & (fold == k), cal & (fold != k) & (fold >= 0)
                if dst.any():
                    oof_cal[dst] = isotonic_predict(
                        isotonic_fit(oof_score[src], correct[src].astype(float)), oof_score[dst]
                    )
            typed = _as_shipped(dataclasses.replace(base, gate_kind=kind, gate=gate, knots=knots))
            if typed.gate is None:
                g = np.ones(n, dtype=np.float32)
            else:
                dirs_k = uv if kind == "subspace" else None
                g = typed.gate.prob(_endpoints(kind, feats[typed.gate_layer], key, None, dirs_k)).numpy()
            calibrated = typed.calibrate(g * top)
            calibrated[~has] = 0.0
            hits = (preds[q[am]] == tgt[am]) & (oof_gate[q[am]] >= GATE_ON)
            rf.kinds[kind] = KindFit(
                typed=typed,
                gate=g,
                calibrated=calibrated,
                oof_gate=oof_gate,
                oof_calibrated=oof_cal,
                select=_figures(oof_cal, correct, select, n_gold_sel, DEFAULT_THRESHOLD),
                select_accuracy=round(float(hits.mean()), 4) if am.any() else 0.0,
            )
        out.relations[rel] = rf
    return out


# --------------------------------------------------------------------------------------------------
# Held-out figures from the library pass, the choice of the gate kind, the report's sections
# --------------------------------------------------------------------------------------------------


@dataclass
class WordArrays:
    """``score_words``'s output for one typed relation over the whole corpus ([n_words] each)."""

    partner: np.ndarray
    share: np.ndarray
    gate: np.ndarray
    probability: np.ndarray

    @classmethod
    def of(cls, tensors: tuple[torch.Tensor, ...]) -> WordArrays:
        """From ``passes.pass_typed``'s (partner, share, gate, probability)."""
        partner, share, gate, probability = (t.numpy() for t in tensors)
        return cls(partner.astype(np.int64), share, gate, probability)


@dataclass
class TypedEvaluation:
    """The typed relations of every gate kind with their held-out figures, and the kind chosen.

    Attributes:
        fit: the fit (fit-side per-word scores included).
        scores: kind -> relation -> the library pass's per-word output.
        typed: kind -> relation -> TypedRelation with ``heldout`` and ``orientation_accuracy`` filled.
        heldout: kind -> relation -> held-out figures (threshold sweep, Clark accuracy where the gate fires).
        unlabelled: kind -> the union of the kind's pairs, undirected, against the held-out gold pairs.
        chosen: the set's gate kind; choice: how it was chosen (macro F1 per kind and part, margins).
    """

    fit: TypedFit
    scores: dict[str, dict[str, WordArrays]]
    typed: dict[str, dict[str, TypedRelation]]
    heldout: dict[str, dict[str, dict[str, Any]]]
    unlabelled: dict[str, dict[str, Any]]
    chosen: str
    choice: dict[str, Any]

    def comparison(self) -> dict[str, dict[str, dict[str, list]]]:
        """{kind: {relation: {"select": [P, R, F1], "heldout": [P, R, F1]}}} at the default threshold."""
        out: dict[str, dict[str, dict[str, list]]] = {}
        for kind in GATE_KINDS:
            out[kind] = {}
            for rel, rf in self.fit.relations.items():
                s, h = rf.kinds[kind].select, self.heldout[kind][rel]["at"]
                out[kind][rel] = {
                    "select": [s["precision"], s["recall"], s["f1"]],
                    "heldout": [h["precision"], h["recall"], h["f1"]],
                }
        return out

    def selected_entry(self, rel: str) -> dict[str, Any]:
        """The report's ``qk`` entry of ``rel`` (the chosen kind)."""
        rf = self.fit.relations[rel]
        t = self.typed[self.chosen][rel]
        return {
            "unit": t.id,
            "attachment": rf.attachment.unit.id,
            "attachment_method": rf.attachment.method,
            "direction": t.direction,
            "gate_kind": t.gate_kind,
            "gate_layer": t.gate_layer,
            "select": rf.kinds[self.chosen].select_accuracy,
            "heldout": self.heldout[self.chosen][rel]["accuracy"],
            "attachment_heldout": rf.attachment.heldout,
        }

    def sweep_and_calibration(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The report's ``sweep`` and ``calibration`` sections, for the chosen kind."""
        h, u = self.heldout[self.chosen], self.unlabelled[self.chosen]
        sweep = {
            "thresholds": list(THRESHOLDS),
            "labelled": {rel: {"precision": v["precision"], "recall": v["recall"]} for rel, v in h.items()},
            "unlabelled": {"precision": u["precision"], "recall": u["recall"]},
        }
        returned = {rel: v["at"]["returned"] for rel, v in h.items()}
        returned["unlabelled"] = u["at"]["returned"]
        calibration = {
            "threshold": DEFAULT_THRESHOLD,
            "gate_kind": self.chosen,
            "labelled": {rel: [v["at"]["precision"], v["at"]["recall"]] for rel, v in h.items()},
            "unlabelled": [u["at"]["precision"], u["at"]["recall"]],
            "returned": returned,
        }
        return sweep, calibration

    def report_section(self) -> dict[str, Any]:
        """The report's ``gate_comparison``: the rule, the choice and the per-relation table."""
        unl = {
            k: {"precision": v["at"]["precision"], "recall": v["at"]["recall"], "returned": v["at"]["returned"]}
            for k, v in self.unlabelled.items()
        }
        return {**self.choice, "relations": self.comparison(), "unlabelled": unl}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _heldout_of(corpus: Corpus, t: TypedRelation, s: WordArrays, gold_lab: set) -> tuple[dict[str, Any], float | None]:
    """Held-out figures of one typed relation from its library scores, and its orientation accuracy."""
    rel = t.relation
    held = corpus.word_split == HELDOUT
    correct = pair_correct(corpus, s.partner, rel, t.direction, gold_lab)
    n_gold = int(corpus.arc_mask(rel, HELDOUT).sum())
    ps, rs = [], []
    for tt in THRESHOLDS:
        p, rc, _ = pr_at(s.probability, correct, held, n_gold, tt)
        ps.append(_round(p))
        rs.append(round(rc, 4))
    am = corpus.arc_mask(rel, HELDOUT)
    q, tgt = arc_query_target(corpus, t.direction)
    hits = (s.partner[q[am]] == tgt[am]) & (s.gate[q[am]] >= GATE_ON)
    orientation: float | None = 1.0  # by construction for dep2head / head2dep
    if t.direction == "visible":
        returned = held & (s.probability >= DEFAULT_THRESHOLD)
        orientation = orientation_accuracy(corpus, s.partner, rel, t.head_side, gold_lab, returned)
    figures = {
        "at": _figures(s.probability, correct, held, n_gold, DEFAULT_THRESHOLD),
        "precision": ps,
        "recall": rs,
        "accuracy": round(float(hits.mean()), 4) if am.any() else 0.0,
    }
    return figures, orientation


def _unlabelled(corpus: Corpus, scores: dict[str, WordArrays], held_unl: set[tuple[int, int]]) -> dict[str, Any]:
    """Held-out precision/recall of the union of a kind's returned pairs (undirected) over THRESHOLDS."""
    held = corpus.word_split == HELDOUT
    gpos = corpus.word_offset[corpus.word_sent]
    ups, urs = [], []
    at: dict[str, Any] = {}
    for tt in sorted(set(THRESHOLDS) | {DEFAULT_THRESHOLD}):
        pairs: set[tuple[int, int]] = set()
        for s in scores.values():
            idx = np.nonzero(held & (s.probability >= tt) & (s.partner >= 0))[0]
            j = gpos[idx] + s.partner[idx]
            pairs.update(zip(np.minimum(idx, j).tolist(), np.maximum(idx, j).tolist()))
        tp = len(pairs & held_unl)
        p = tp / len(pairs) if pairs else None
        rc = tp / len(held_unl) if held_unl else 0.0
        if tt in THRESHOLDS:
            ups.append(_round(p))
            urs.append(round(rc, 4))
        if tt == DEFAULT_THRESHOLD:
            at = {"precision": _round(p), "recall": round(rc, 4), "returned": len(pairs), "gold": len(held_unl)}
    return {"at": at, "precision": ups, "recall": urs}


def choose_gate_kind(macro_select: dict[str, float]) -> tuple[str, float]:
    """The rule (RULE): (chosen kind, residual minus subspace macro F1 on the selection part)."""
    margin = macro_select["residual"] - macro_select["subspace"]
    return ("residual" if margin > RULE_MARGIN else "subspace"), margin


def evaluate_typed(
    corpus: Corpus,
    fit: TypedFit,
    scores: dict[str, dict[str, WordArrays]],
    gold_lab: set,
    held_unl: set[tuple[int, int]],
) -> TypedEvaluation:
    """Held-out figures of every kind from the library pass's ``scores``, and the set's gate kind."""
    heldout: dict[str, dict[str, dict[str, Any]]] = {}
    typed: dict[str, dict[str, TypedRelation]] = {}
    unlabelled: dict[str, dict[str, Any]] = {}
    for kind in GATE_KINDS:
        heldout[kind], typed[kind] = {}, {}
        for rel, rf in fit.relations.items():
            t = rf.kinds[kind].typed
            figures, orientation = _heldout_of(corpus, t, scores[kind][rel], gold_lab)
            heldout[kind][rel] = figures
            typed[kind][rel] = dataclasses.replace(t, heldout=dict(figures["at"]), orientation_accuracy=orientation)
        unlabelled[kind] = _unlabelled(corpus, scores[kind], held_unl)
    macro: dict[str, dict[str, float]] = {}
    for kind in GATE_KINDS:
        sel = [fit.relations[r].kinds[kind].select["f1"] for r in RULE_RELATIONS if r in fit.relations]
        hel = [heldout[kind][r]["at"]["f1"] for r in RULE_RELATIONS if r in fit.relations]
        macro[kind] = {"select": float(np.mean(sel)) if sel else 0.0, "heldout": float(np.mean(hel)) if hel else 0.0}
    chosen, margin = choose_gate_kind({k: v["select"] for k, v in macro.items()})
    choice = {
        "rule": RULE,
        "rule_relations": list(RULE_RELATIONS),
        "threshold": DEFAULT_THRESHOLD,
        "margin": RULE_MARGIN,
        "macro_f1": {k: {p: round(v, 4) for p, v in d.items()} for k, d in macro.items()},
        "residual_minus_subspace": {
            "select": round(margin, 4),
            "heldout": round(macro["residual"]["heldout"] - macro["subspace"]["heldout"], 4),
        },
        "chosen": chosen,
    }
    return TypedEvaluation(fit, scores, typed, heldout, unlabelled, chosen, choice)


def held_out_gold_pairs(corpus: Corpus, gold_unl: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The undirected gold word pairs of the held-out part."""
    split = corpus.word_split
    return {pr for pr in gold_unl if split[pr[0]] == HELDOUT}
