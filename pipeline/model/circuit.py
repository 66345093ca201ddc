"""One attention head's query-key circuit in factored form, and its SVD.

For a head with query map A = W_Q^h and key map B = W_K^h (both [d_model, d_head]) the bilinear form
x_i^T W_QK x_j with W_QK = A B^T scores query residual x_i against key residual x_j. W_QK has rank at
most d_head, so its SVD is computed from the factors: A = Q_a R_a, B = Q_b R_b (reduced QR), then the
d_head x d_head core R_a R_b^T = P S T^T, giving W_QK = (Q_a P) S (Q_b T)^T. The d_model x d_model
product is never formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import torch


def energy_rank(sigma: torch.Tensor, energy: float = 0.9, min_rank: int = 8) -> int:
    """Smallest k whose top-k singular values hold ``energy`` of sum(sigma^2), at least ``min_rank``.

    Capped at len(sigma). This is the documented default size of a head's relational subspace.
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    sq = sigma.double() ** 2
    total = float(sq.sum())
    if total == 0.0:
        return min(min_rank, len(sigma))
    cumulative = torch.cumsum(sq, 0) / total
    k = int(torch.searchsorted(cumulative, torch.tensor(energy, dtype=cumulative.dtype) - 1e-12).item()) + 1
    return min(max(k, min_rank), len(sigma))


class FactoredQK:
    """W_QK = A B^T for one head, kept as its factors; SVD computed lazily in float64 and cached.

    Shapes:
        A: [d_model, d_head]   query map W_Q^h
        B: [d_model, d_head]   key map W_K^h (of the key head this query head reads, under GQA)
        sigma: [d_head]        singular values, descending
        U: [d_model, d_head]   query directions u_r (orthonormal columns)
        V: [d_model, d_head]   key directions v_r (orthonormal columns)
        alpha: [d_head, d_head] head-space image of each query component: A^T x = sum_r (u_r.x) alpha[:, r]
        beta:  [d_head, d_head] head-space image of each key component:   B^T x = sum_r (v_r.x) beta[:, r]

    alpha[:, r] . beta[:, s] = sigma_r delta_rs, so at equal positions (or without RoPE) the head-space
    dot product of the projected query and key splits into the rank-1 terms sigma_r (x_i.u_r)(x_j.v_r).

    Signs are canonical: each u_r has its largest-magnitude entry positive (v_r flips with it), so ids
    and coordinates are stable across runs and machines.
    """

    def __init__(self, A: torch.Tensor, B: torch.Tensor) -> None:
        if A.ndim != 2 or A.shape != B.shape:
            raise ValueError(f"A and B must both be [d_model, d_head]; got {tuple(A.shape)} and {tuple(B.shape)}")
        self.A = A.detach()
        self.B = B.detach()

    @property
    def d_model(self) -> int:
        return int(self.A.shape[0])

    @property
    def d_head(self) -> int:
        return int(self.A.shape[1])

    @cached_property
    def _svd(self) -> tuple[torch.Tensor, ...]:
        A = self.A.double()
        B = self.B.double()
        Qa, Ra = torch.linalg.qr(A)  # [d_model, d_head], [d_head, d_head]
        Qb, Rb = torch.linalg.qr(B)
        P, S, Th = torch.linalg.svd(Ra @ Rb.T)  # core [d_head, d_head]
        T = Th.T
        U = Qa @ P
        V = Qb @ T
        # Canonical signs: make the largest-magnitude entry of each u_r positive.
        idx = U.abs().argmax(dim=0)
        signs = torch.sign(U[idx, torch.arange(U.shape[1])])
        signs[signs == 0] = 1.0
        U, V, P, T = U * signs, V * signs, P * signs, T * signs
        alpha = Ra.T @ P  # A^T x = Ra^T Qa^T x = Ra^T P (P^T Qa^T x) = alpha (U^T x)
        beta = Rb.T @ T
        return S, U, V, alpha, beta

    @property
    def sigma(self) -> torch.Tensor:
        return self._svd[0]

    @property
    def U(self) -> torch.Tensor:
        return self._svd[1]

    @property
    def V(self) -> torch.Tensor:
        return self._svd[2]

    @property
    def alpha(self) -> torch.Tensor:
        return self._svd[3]

    @property
    def beta(self) -> torch.Tensor:
        return self._svd[4]

    def query_map(self, components: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """[d_model, d_head] map x -> head-space query restricted to ``components`` (float64).

        With all components this equals A (up to rounding).
        """
        c = torch.as_tensor(components, dtype=torch.long)
        return self.U[:, c] @ self.alpha[:, c].T

    def key_map(self, components: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """[d_model, d_head] map x -> head-space key restricted to ``components`` (float64)."""
        c = torch.as_tensor(components, dtype=torch.long)
        return self.V[:, c] @ self.beta[:, c].T

    def truncation_rank(self, energy: float = 0.9, min_rank: int = 8) -> int:
        return energy_rank(self.sigma, energy, min_rank)

    def dense(self) -> torch.Tensor:
        """The full [d_model, d_model] product A B^T. For tests and benchmarks only."""
        return self.A.double() @ self.B.double().T

    def reconstruct(self, k: int | None = None) -> torch.Tensor:
        """sum_{r<k} sigma_r u_r v_r^T as a dense matrix. For tests only."""
        k = self.d_head if k is None else k
        return (self.U[:, :k] * self.sigma[:k]) @ self.V[:, :k].T
