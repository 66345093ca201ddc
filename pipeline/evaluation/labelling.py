"""The entries of the label artifact: the top subspaces of every layer by logit spread, each with its
best relation and isotonic map, and the typed relations (``qk:`` ids) of the chosen gate kind; plus the uncalibrated diagnostics of where
high shares land."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.evaluation.corpus import HELDOUT, REL_ALL, RELATIONS, SELECT, Corpus
from pipeline.evaluation.passes import UnitSet
from pipeline.evaluation.qk import TypedEvaluation
from pipeline.evaluation.scoring import pair_correct, pr_at
from pipeline.relations.calibration import DEFAULT_THRESHOLD, compress_knots, isotonic_fit, isotonic_predict
from pipeline.relations.labels import ACCURACY_FLOOR

SUBSPACES_PER_LAYER = 3


@dataclass
class LabelEntries:
    """The artifact's ``subspaces`` (id -> entry: subspaces first, then qk types), the uncalibrated
    unlabelled precision of those subspaces and of the best raw attention head for ``all``."""

    entries: dict[str, dict]
    raw_unlabelled: dict
    best_head_unlabelled: dict


def _undirected(idx: np.ndarray, j: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(np.minimum(idx, j).tolist(), np.maximum(idx, j).tolist()))


def _subspace_entry(
    corpus: Corpus, rank: UnitSet, rank_acc: torch.Tensor, ui: int, dirs: tuple[str, ...], gold_lab: set
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """The entry of rank-k unit ``ui`` (best relation and direction on the selection part), with its
    predictions, shares and pair correctness (each [n_words])."""
    split = corpus.word_split
    held = split == HELDOUT
    rel_idx = [REL_ALL.index(r) for r in RELATIONS]
    a = rank_acc[ui][:, SELECT][:, rel_idx]  # [D, R]
    flat = int(torch.argmax(a.reshape(-1)))
    di, rj = flat // len(RELATIONS), flat % len(RELATIONS)
    rel, direction = RELATIONS[rj], dirs[di]
    held_acc = float(rank_acc[ui, di, HELDOUT, REL_ALL.index(rel)])
    preds = rank.preds[ui].long().numpy()
    top = rank.top_of(ui).float().numpy()
    correct = pair_correct(corpus, preds, rel, direction, gold_lab)
    has = preds >= 0
    knots = isotonic_fit(top[(split == SELECT) & has], correct[(split == SELECT) & has].astype(float))
    cal = isotonic_predict(knots, top)
    n_gold = int(corpus.arc_mask(rel, HELDOUT).sum())
    p, rc, n = pr_at(cal, correct & has, held & has, n_gold, DEFAULT_THRESHOLD)
    xs, ys = compress_knots(*knots)
    entry = {
        "kind": "subspace",
        "label": rel if held_acc >= ACCURACY_FLOOR else None,
        "best_relation": rel,
        "direction": direction,
        "accuracy": round(held_acc, 4),
        "select_accuracy": round(float(rank_acc[ui, di, SELECT, REL_ALL.index(rel)]), 4),
        "heldout_at_threshold": {
            "precision": None if p is None else round(p, 4),
            "recall": round(rc, 4),
            "returned": n,
        },
        "calibration": {
            "x": xs,
            "y": ys,
            "target": f"pair (query, argmax) is a gold {rel} arc ({direction})",
            "score": "word-level attention share of the subspace",
        },
    }
    return entry, preds, top, correct


def _qk_entries(te: TypedEvaluation) -> dict[str, dict]:
    """``qk:`` entries of the chosen gate kind (the typed relations, as in the ``relations`` section)."""
    entries = {}
    for rel, t in te.typed[te.chosen].items():
        att = te.fit.relations[rel].attachment
        u = att.unit
        xs, ys = compress_knots(*t.knots)
        e = te.selected_entry(rel)
        h = t.heldout
        entry = {
            "kind": "qk",
            "label": rel if e["heldout"] >= ACCURACY_FLOOR else None,
            "best_relation": rel,
            "direction": t.direction,
            "accuracy": e["heldout"],
            "select_accuracy": e["select"],
            "attachment": {
                "id": u.id,
                "method": att.method,
                "layer": u.layer,
                "head": u.head,
                "k": u.k,
                "components": [list(c) for c in u.components],
                "heldout_accuracy": att.heldout,
            },
            "heldout_at_threshold": {"precision": h["precision"], "recall": h["recall"], "returned": h["returned"]},
            "gate_kind": t.gate_kind,
            "calibration": {
                "x": xs,
                "y": ys,
                "target": f"pair (query, argmax) is a gold {rel} arc ({t.direction})",
                "score": "gate x word-level attention share",
            },
        }
        if t.gate is not None:
            entry["gate"] = {**t.gate.to_json(), "features": t.gate_kind}
        entries[t.id] = entry
    return entries


def label_entries(
    ex,
    corpus: Corpus,
    rank: UnitSet,
    rank_acc: torch.Tensor,
    attention: UnitSet,
    best_attention: int,
    dirs: tuple[str, ...],
    gold_lab: set,
    held_unl: set[tuple[int, int]],
    typed: TypedEvaluation,
) -> LabelEntries:
    """Entries for the top SUBSPACES_PER_LAYER subspaces of each layer (those among the rank-k units)
    and the typed relations of the chosen gate kind (``qk:`` ids). ``best_attention``: the row of the attention head chosen for ``all``."""
    held = corpus.word_split == HELDOUT
    gpos = corpus.word_offset[corpus.word_sent]
    rank_index = {u.id: i for i, u in enumerate(rank.units)}
    entries = {}
    raw_pairs: set[tuple[int, int]] = set()
    raw_lab_tp, raw_n = 0, 0
    label_ids = [
        s.id
        for l in range(ex.adapter.n_layers)
        for s in ex.extract_relational_subspaces(l, top_k=SUBSPACES_PER_LAYER, typed=False)
    ]
    for sid in label_ids:
        if sid not in rank_index:
            continue
        entry, preds, top, correct = _subspace_entry(corpus, rank, rank_acc, rank_index[sid], dirs, gold_lab)
        entries[sid] = entry
        # uncalibrated unlabelled precision at share >= 0.7
        idx = np.nonzero(held & (preds >= 0) & (top >= DEFAULT_THRESHOLD))[0]
        raw_n += len(idx)
        raw_pairs.update(_undirected(idx, gpos[idx] + preds[idx]))
        raw_lab_tp += int(correct[idx].sum())
    raw_prec = len(raw_pairs & held_unl) / len(raw_pairs) if raw_pairs else None
    # the best raw attention head for "all": where does its attention >= 0.7 land?
    pa = attention.preds[best_attention].long().numpy()
    va = attention.top_of(best_attention).float().numpy()
    idx = np.nonzero(held & (pa >= 0) & (va >= DEFAULT_THRESHOLD))[0]
    hp = _undirected(idx, gpos[idx] + pa[idx])
    best_head = {
        "unit": attention.units[best_attention].id,
        "precision": round(len(hp & held_unl) / len(hp), 4) if hp else None,
        "returned": len(hp),
    }
    entries.update(_qk_entries(typed))
    raw = {
        "n_subspaces": len(label_ids),
        "precision": None if raw_prec is None else round(raw_prec, 4),
        "returned": len(raw_pairs),
        "labelled_precision": round(raw_lab_tp / raw_n, 4) if raw_n else None,
    }
    return LabelEntries(entries, raw, best_head)
