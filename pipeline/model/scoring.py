"""Replaceable scoring functions: subspace logits [S, B, T, T] -> pair scores in [0, 1].

A scorer receives the subspace logits (already scaled by the head's 1/sqrt(d_head) factor, bias terms
included) and the additive mask the model itself would use, and returns one score per (query, key).
"""

from __future__ import annotations

from typing import Protocol

import torch


class PairScorer(Protocol):
    def __call__(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


def attention_share(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of query i's attention that goes to key j within the subspace.

    A softmax over all keys the model lets i see (special tokens and i itself included: the model
    parks "no relation" mass there), with the model's own mask (padding, and the causal mask for
    decoders) added. Rows sum to 1; a score of 0.7 means 70% of the subspace's attention from i is on j.

    Shapes: logits [S, B, T, T]; mask [B, T, T] additive (0 or -inf); returns [S, B, T, T].
    """
    return torch.softmax(logits + mask, dim=-1)
