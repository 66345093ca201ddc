"""Words of a sentence over the model's subwords: pooling subword scores to words (Clark et al. 2019),
candidate partners, and the argmax partner of each word.

Subword -> word pooling:
    attention TO a word is the sum over its subwords; attention FROM a word is the mean over its
    subwords:  A_w = M_avg A M_sum^T  (M_sum[u, t] = 1 when subword t lies in word u; M_avg = M_sum
    with rows normalised to 1). Logits are pooled by the mean on both sides: L_w = M_avg L M_avg^T.

The evaluation (gold words of UD sentences) and ingestion (spaCy tokens) build the same ``WordBatch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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


def pad_rows(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [B, T] ids and attention mask from token id lists (positions 0..len-1 per row)."""
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[b, : len(r)] = 1
    return ids, mask


def word_batch(
    ids: torch.Tensor,
    mask: torch.Tensor,
    members: list[list[list[int]]],
    causal: bool,
    sent: list[int] | None = None,
    gidx: torch.Tensor | None = None,
) -> WordBatch:
    """The WordBatch of a padded batch whose row b has words ``members[b]`` (subword positions each).

    ``sent``: an id per row (default 0..B-1); ``gidx``: global word indices (default 0..N-1)."""
    m_sum, m_avg, cand = word_pooling([m if m else [[]] for m in members], ids.shape[1], causal)
    bidx = torch.tensor([b for b, m in enumerate(members) for _ in m], dtype=torch.long)
    uidx = torch.tensor([u for m in members for u in range(len(m))], dtype=torch.long)
    return WordBatch(
        list(range(len(members))) if sent is None else sent,
        ids,
        mask,
        m_sum,
        m_avg,
        cand,
        bidx,
        uidx,
        torch.arange(len(bidx)) if gidx is None else gidx,
    )


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
    bb = [b for b, words in enumerate(members) for pos in words for _ in pos]
    uu = [u for words in members for u, pos in enumerate(words) for _ in pos]
    tt = [t for words in members for pos in words for t in pos]
    if tt:
        m_sum[bb, uu, tt] = 1.0
        valid[bb, uu] = True
    m_avg = m_sum / m_sum.sum(-1, keepdim=True).clamp(min=1.0)
    cand = valid[:, :, None] & valid[:, None, :] & ~torch.eye(U, dtype=torch.bool)[None]
    if causal:
        cand = cand & torch.ones(U, U, dtype=torch.bool).tril(-1)[None]
    return m_sum, m_avg, cand


def masked_argmax(scores: torch.Tensor, wb: WordBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted partner (local word index, -1 when none) and its score, each [N, n_flat_words]."""
    s = scores.masked_fill(~wb.cand, float("-inf"))
    val, idx = s.max(-1)  # [N, B, U]
    idx = torch.where(torch.isfinite(val), idx, torch.full_like(idx, -1))
    return idx[:, wb.bidx, wb.uidx], val[:, wb.bidx, wb.uidx]


def prefix_token(tokenizer, causal: bool) -> int | None:
    """For a decoder whose tokenizer adds no special token: the id prepended as an attention sink
    (``<|endoftext|>`` if the vocabulary has it, else BOS, else EOS); None for encoders."""
    if not causal:
        return None
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    if len(probe) != len(tokenizer("a", add_special_tokens=False)["input_ids"]):
        return None  # the tokenizer already adds its own BOS
    vocab = tokenizer.get_vocab()
    for candidate in ("<|endoftext|>",):
        if candidate in vocab:
            return int(vocab[candidate])
    for tid in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if tid is not None:
            return int(tid)
    return None
