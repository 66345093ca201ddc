"""Scoring units against the gold arcs: accuracy tables (Clark et al.'s protocol), the choice of a
unit per relation, pair correctness and precision/recall at a threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.evaluation.corpus import HELDOUT, REL_ALL, RELATIONS, SELECT, Corpus, arc_query_target, directions
from pipeline.evaluation.units import Unit


def relation_matrix(corpus: Corpus) -> torch.Tensor:
    """[n_arcs, 2 * len(REL_ALL)] one-hot of (split, relation) membership, for counting by matmul."""
    n = len(corpus.arc_rel)
    out = torch.zeros(n, 2 * len(REL_ALL))
    for s in (SELECT, HELDOUT):
        for r, rel in enumerate(REL_ALL):
            out[torch.from_numpy(corpus.arc_mask(rel, s)), s * len(REL_ALL) + r] = 1.0
    return out


def accuracy_table(corpus: Corpus, preds: torch.Tensor, causal: bool, chunk: int = 512) -> torch.Tensor:
    """Accuracy [N, n_dirs, 2 splits, len(REL_ALL)] of N units given local predictions [N, n_words]."""
    onehot = relation_matrix(corpus)
    totals = onehot.sum(0).clamp(min=1.0).view(2, len(REL_ALL))
    dirs = directions(causal)
    out = torch.zeros(preds.shape[0], len(dirs), 2, len(REL_ALL))
    for d, direction in enumerate(dirs):
        q_np, t_np = arc_query_target(corpus, direction)
        q, t = torch.from_numpy(q_np), torch.from_numpy(t_np)
        for start in range(0, preds.shape[0], chunk):
            p = preds[start : start + chunk, q].long()
            hits = (p == t[None]).float() @ onehot  # [n, 2*R]
            out[start : start + chunk, d] = hits.view(-1, 2, len(REL_ALL)) / totals[None]
    return out


@dataclass(frozen=True)
class Pick:
    """The unit chosen for one relation and method.

    Attributes:
        method: the method whose unit set holds it; unit: its row there; direction: its index
            into ``directions(causal)``; select: its selection-part accuracy, rounded as reported.
    """

    method: str
    unit: int
    direction: int
    select: float


def select_best(acc: torch.Tensor, dirs: tuple[str, ...], rel: int) -> tuple[int, int]:
    """(unit index, direction index) with the best selection-part accuracy on relation ``rel``;
    ties go to the earlier unit and direction. ``acc``: [N, n_dirs, 2 splits, len(REL_ALL)]."""
    sel = acc[:, :, SELECT, rel]  # [N, D]
    flat = int(torch.argmax(sel.reshape(-1)))
    return flat // len(dirs), flat % len(dirs)


def selection_entry(unit: Unit, acc: torch.Tensor, ui: int, di: int, dirs: tuple[str, ...], rel: int) -> dict:
    """The report's record of a chosen unit: id, direction, selection and held-out accuracy."""
    return {
        "unit": unit.id,
        "direction": dirs[di],
        "select": round(float(acc[ui, di, SELECT, rel]), 4),
        "heldout": round(float(acc[ui, di, HELDOUT, rel]), 4),
    }


def pair_correct(corpus: Corpus, preds: np.ndarray, rel: str, direction: str, gold_lab: set) -> np.ndarray:
    """For each word i: is (i, pred[i]) a gold arc of ``rel`` in ``direction``? [n_words] bool."""
    ri = RELATIONS.index(rel)
    g = corpus.word_offset[corpus.word_sent] + preds  # global partner
    out = np.zeros(corpus.n_words, dtype=bool)
    for i in np.nonzero(preds >= 0)[0]:
        j = int(g[i])
        if direction == "dep2head":
            out[i] = (ri, int(i), j) in gold_lab
        elif direction == "head2dep":
            out[i] = (ri, j, int(i)) in gold_lab
        else:
            out[i] = (ri, int(i), j) in gold_lab or (ri, j, int(i)) in gold_lab
    return out


def query_target(corpus: Corpus, rel: str, direction: str) -> np.ndarray:
    """[n_words] bool: the word is the querying end of a gold ``rel`` arc in ``direction``."""
    m = corpus.arc_mask(rel, None)
    q, _ = arc_query_target(corpus, direction)
    y = np.zeros(corpus.n_words, dtype=bool)
    y[q[m]] = True
    return y


def pr_at(
    scores: np.ndarray, correct: np.ndarray, mask: np.ndarray, n_gold: int, t: float
) -> tuple[float | None, float, int]:
    """(precision or None when nothing is returned, recall, number returned) of the words in ``mask``
    whose score reaches ``t``."""
    ret = mask & (scores >= t)
    n = int(ret.sum())
    tp = int((ret & correct).sum())
    return (tp / n if n else None), (tp / n_gold if n_gold else 0.0), n
