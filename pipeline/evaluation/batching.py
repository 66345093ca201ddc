"""Length-sorted batches of corpus sentences and the subword -> word pooling of their scores.

Subword -> word pooling (Clark et al.):
    attention TO a word is the sum over its subwords; attention FROM a word is the mean over its
    subwords:  A_w = M_avg A M_sum^T  (M_sum[u, t] = 1 when subword t lies in word u; M_avg = M_sum
    with rows normalised to 1). Logits are pooled by the mean on both sides: L_w = M_avg L M_avg^T.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.evaluation.corpus import Corpus


@dataclass
class WordBatch:
    """A padded batch of sentences and its subword -> word pooling.

    Shapes: ids, mask [B, T]; m_sum, m_avg [B, U, T]; cand [B, U, U] (j is a candidate partner of
    i: both aligned, j != i, and j < i for a decoder); gidx: flat global word index of each
    (b, u) with u < n_words[b], in order; bidx, uidx: the (b, u) of each.
    """

    sent: list[int]
    ids: torch.Tensor
    mask: torch.Tensor
    m_sum: torch.Tensor
    m_avg: torch.Tensor
    cand: torch.Tensor
    bidx: torch.Tensor
    uidx: torch.Tensor
    gidx: torch.Tensor


def pool_to(att: torch.Tensor, wb: WordBatch) -> torch.Tensor:
    """Attention-like [..., B, T, T] -> word level [..., B, U, U]: mean over FROM subwords, sum over TO subwords."""
    return torch.einsum("but,...bts,bvs->...buv", wb.m_avg, att, wb.m_sum)


def pool_mean(logits: torch.Tensor, wb: WordBatch) -> torch.Tensor:
    """Logit-like [..., B, T, T] -> word level [..., B, U, U]: mean over the subwords on both sides."""
    return torch.einsum("but,...bts,bvs->...buv", wb.m_avg, logits, wb.m_avg)


def word_pooling(
    members: list[list[list[int]]], T: int, causal: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(m_sum, m_avg, cand) for a batch given members[b][u] = subword positions."""
    B = len(members)
    U = max(len(m) for m in members)
    m_sum = torch.zeros(B, U, T)
    valid = torch.zeros(B, U, dtype=torch.bool)
    for b, words in enumerate(members):
        for u, pos in enumerate(words):
            if pos:
                m_sum[b, u, pos] = 1.0
                valid[b, u] = True
    m_avg = m_sum / m_sum.sum(-1, keepdim=True).clamp(min=1.0)
    cand = valid[:, :, None] & valid[:, None, :] & ~torch.eye(U, dtype=torch.bool)[None]
    if causal:
        cand = cand & torch.ones(U, U, dtype=torch.bool).tril(-1)[None]
    return m_sum, m_avg, cand


def batches(corpus: Corpus, causal: bool, budget: int = 3000, only: np.ndarray | None = None) -> Iterator[WordBatch]:
    """Length-sorted batches of at most ``budget`` padded subword tokens (B * T)."""
    order = [k for k in np.argsort([len(s.ids) for s in corpus.sentences], kind="stable") if only is None or only[k]]
    group: list[int] = []
    for k in order + [None]:
        if k is not None:
            T_new = len(corpus.sentences[k].ids)
            if not group or (len(group) + 1) * T_new <= budget:
                group.append(k)
                continue
        if not group:
            break
        yield _make_batch(corpus, group, causal)
        group = [k] if k is not None else []


def _make_batch(corpus: Corpus, group: list[int], causal: bool) -> WordBatch:
    sents = [corpus.sentences[k] for k in group]
    T = max(len(s.ids) for s in sents)
    ids = torch.zeros(len(sents), T, dtype=torch.long)
    mask = torch.zeros(len(sents), T, dtype=torch.long)
    for b, s in enumerate(sents):
        ids[b, : len(s.ids)] = torch.tensor(s.ids)
        mask[b, : len(s.ids)] = 1
    m_sum, m_avg, cand = word_pooling([s.members for s in sents], T, causal)
    bidx = torch.tensor([b for b, s in enumerate(sents) for _ in range(s.n_words)], dtype=torch.long)
    uidx = torch.tensor([u for s in sents for u in range(s.n_words)], dtype=torch.long)
    gidx = torch.tensor(
        [corpus.word_offset[k] + u for k, s in zip(group, sents) for u in range(s.n_words)], dtype=torch.long
    )
    return WordBatch(group, ids, mask, m_sum, m_avg, cand, bidx, uidx, gidx)


def masked_argmax(scores: torch.Tensor, wb: WordBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted partner (local word index, -1 when none) and its score, each [N, n_flat_words]."""
    s = scores.masked_fill(~wb.cand, float("-inf"))
    val, idx = s.max(-1)  # [N, B, U]
    idx = torch.where(torch.isfinite(val), idx, torch.full_like(idx, -1))
    return idx[:, wb.bidx, wb.uidx], val[:, wb.bidx, wb.uidx]
