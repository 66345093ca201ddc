"""Subword pair scores to span pair scores.

Pooling (Clark et al. 2019). For a subspace's attention share p(i, j) between subwords, the score of
span A (query side) to span B (key side) is the attention *to* B summed over B's subwords, averaged
*from* A's subwords:  s(A, B) = mean_{i in A} sum_{j in B} p(i, j).  It stays in [0, 1]. Pairs of spans
in the same sentence with s >= threshold are kept; self-pairs (same node key) are dropped, and special
tokens never belong to a span.
"""

from __future__ import annotations

import torch


def pool_span_scores(scores: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Clark pooling. scores [S, T, T] (one window), member [n, T] -> [S, n, n] span scores."""
    m = member.to(scores.dtype)
    from_avg = m / m.sum(1, keepdim=True).clamp(min=1)  # average over the query span's subwords
    return torch.einsum("at,stu,bu->sab", from_avg, scores, m)  # sum over the key span's subwords
