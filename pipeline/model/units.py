"""Unit logits of a layer's QK circuits, batched over heads: top-k truncations, single rank-1
components and sets of components assembled across the heads of one layer, plus the attention share
within a unit. The evaluation and the typed relations of the graph both compute their scores here.

Ids of assembled units read ``L2A:H8c0-12.14-31+H1c4``: components 0-12 and 14-31 of head 8 and
component 4 of head 1 of layer 2, their logits summed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipeline.model.rope import apply_rope


def _ranges(values: Sequence[int]) -> str:
    vals = sorted(values)
    parts, start = [], None
    for n, v in enumerate(vals):
        if start is None:
            start = v
        if n + 1 == len(vals) or vals[n + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ".".join(parts)


def assembled_id(layer: int, comps: Sequence[tuple[int, int]]) -> str:
    """``L3A:H2c0-31+H5c3.7``: components 0..31 of head 2 and 3, 7 of head 5 of layer 3, summed."""
    heads = sorted({h for h, _ in comps})
    return f"L{layer}A:" + "+".join(f"H{h}c" + _ranges([r for hh, r in comps if hh == h]) for h in heads)


def parse_assembled_id(uid: str) -> tuple[int, list[tuple[int, int]]]:
    """Inverse of ``assembled_id``."""
    layer_part, rest = uid.split("A:", 1)
    layer = int(layer_part[1:])
    comps: list[tuple[int, int]] = []
    for part in rest.split("+"):
        h, cs = part[1:].split("c", 1)
        for rng in cs.split("."):
            a, _, b = rng.partition("-")
            comps.extend((int(h), r) for r in range(int(a), int(b or a) + 1))
    return layer, comps


class HeadFactors:
    """The SVD factors of all heads of a layer, stacked, in float32 (for batched unit logits)."""

    def __init__(self, ex, layer: int) -> None:
        H = ex.adapter.n_heads
        cs = [ex.circuit(layer, h) for h in range(H)]
        b_q, b_k = ex.biases(layer)
        dt = torch.float32
        self.layer = layer
        self.U = torch.stack([c.U for c in cs]).to(dt)  # [H, d, r]
        self.V = torch.stack([c.V for c in cs]).to(dt)
        self.alpha = torch.stack([c.alpha for c in cs]).to(dt)  # [H, e, r]
        self.beta = torch.stack([c.beta for c in cs]).to(dt)
        self.b_q = b_q.to(dt)  # [H, e]
        self.b_k = torch.stack([b_k[ex.adapter.kv_head(h)] for h in range(H)]).to(dt)
        self.scale = ex.adapter.scaling(layer)
        self.energy_k = [c.truncation_rank(ex.energy, ex.min_rank) for c in cs]


def head_coordinates(hf: HeadFactors, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Query and key coordinates of every head's components, each [H, B, T, d_head]."""
    return torch.einsum("btd,hdr->hbtr", x, hf.U), torch.einsum("btd,hdr->hbtr", x, hf.V)


def prefix_logits(hf: HeadFactors, x: torch.Tensor, rotary, k: int, coords=None) -> torch.Tensor:
    """Scaled logits of every head's top-k truncation (biases, RoPE), [H, B, T, T]; equals the
    extractor's ``subspace_logits`` for ``subspace(layer, h, k=k)``. ``coords``: precomputed
    ``head_coordinates(hf, x)`` (saves the projections when several k are wanted)."""
    a, b = coords if coords is not None else head_coordinates(hf, x)
    a, b = a[..., :k], b[..., :k]
    q = torch.einsum("hbtr,her->hbte", a, hf.alpha[:, :, :k]) + hf.b_q[:, None, None, :]
    kk = torch.einsum("hbtr,her->hbte", b, hf.beta[:, :, :k]) + hf.b_k[:, None, None, :]
    if rotary is not None:
        q, kk = apply_rope(q, *rotary), apply_rope(kk, *rotary)
    return torch.einsum("hbie,hbje->hbij", q, kk) * hf.scale


def component_logits(
    hf: HeadFactors, x: torch.Tensor, rotary, head: int, comps: Sequence[int] | None = None
) -> torch.Tensor:
    """Scaled logits of each rank-1 component r of ``head`` as a subspace of its own, [R, B, T, T]:

        logit_r(i, j) = scale * (R_i (a_ir alpha_r + b_q)) . (R_j (b_jr beta_r + b_k))

    with a_ir = x_i.u_r, b_jr = x_j.v_r. Expanded into a_ir b_jr G_r(i,j) + a_ir H_r(i,j) + b_jr M_r(i,j)
    + N(i,j), where G, H, M, N depend on positions only (constants without RoPE), so no per-component
    head-space product over the batch is needed.
    """
    r_idx = torch.arange(hf.U.shape[-1]) if comps is None else torch.as_tensor(list(comps), dtype=torch.long)
    a = (x @ hf.U[head][:, r_idx]).permute(2, 0, 1)  # [R, B, T]
    b = (x @ hf.V[head][:, r_idx]).permute(2, 0, 1)
    al = hf.alpha[head][:, r_idx].T  # [R, e]
    be = hf.beta[head][:, r_idx].T
    bq, bk = hf.b_q[head], hf.b_k[head]
    if rotary is None:
        G = (al * be).sum(-1)[:, None, None, None]  # [R,1,1,1] (= sigma_r)
        Hq = (al @ bk)[:, None, None, None]
        Mk = (be @ bq)[:, None, None, None]
        N = bq @ bk
    else:
        cos, sin = rotary
        T = x.shape[1]
        c0, s0 = cos[:1, :T], sin[:1, :T]  # positions 0..T-1 (right padding): same for every row
        ral = apply_rope(al[:, None, None, :].expand(-1, 1, T, -1), c0, s0)[:, 0]  # [R, T, e]
        rbe = apply_rope(be[:, None, None, :].expand(-1, 1, T, -1), c0, s0)[:, 0]
        rbq = apply_rope(bq[None, None, :].expand(1, T, -1), c0, s0)[0]  # [T, e]
        rbk = apply_rope(bk[None, None, :].expand(1, T, -1), c0, s0)[0]
        G = torch.einsum("rie,rje->rij", ral, rbe)[:, None]  # [R,1,T,T]
        Hq = torch.einsum("rie,je->rij", ral, rbk)[:, None]
        Mk = torch.einsum("ie,rje->rij", rbq, rbe)[:, None]
        N = rbq @ rbk.T
    out = a[:, :, :, None] * b[:, :, None, :] * G + a[:, :, :, None] * Hq + b[:, :, None, :] * Mk + N
    return out * hf.scale


def assembled_logits(
    hf: HeadFactors, x: torch.Tensor, rotary, comps: Sequence[tuple[int, int]], coords=None
) -> torch.Tensor:
    """Sum of the rank-1 component logits of (head, r) pairs of one layer, [B, T, T].

    ``coords``: precomputed ``head_coordinates(hf, x)`` (saves the projections when several units of
    one layer are scored).

    Equal to ``component_logits(...).sum(0)`` summed over the heads, without the [R, B, T, T]
    intermediate. Per head, with Q_r(i) = R_i(a_ir alpha_r), K_r(j) = R_j(b_jr beta_r),
    Qb(i) = R_i b_q and Kb(j) = R_j b_k (R the rotation of a position, identity without RoPE):

        sum_r logit_r(i, j) / scale = sum_r Q_r(i).K_r(j) + (sum_r Q_r(i)).Kb(j) + Qb(i).(sum_r K_r(j))
                                      + |C| Qb(i).Kb(j)

    and without RoPE the first term is sum_r sigma_r a_ir b_jr, one matrix product.
    """
    total: torch.Tensor | None = None
    B, T = x.shape[:2]
    for h in sorted({h for h, _ in comps}):
        r_idx = torch.as_tensor([r for hh, r in comps if hh == h], dtype=torch.long)
        if coords is None:
            a = x @ hf.U[h][:, r_idx]  # [B, T, R]
            b = x @ hf.V[h][:, r_idx]
        else:
            a, b = coords[0][h][..., r_idx], coords[1][h][..., r_idx]
        al = hf.alpha[h][:, r_idx].T  # [R, e]
        be = hf.beta[h][:, r_idx].T
        bq, bk = hf.b_q[h], hf.b_k[h]
        n = len(r_idx)
        if rotary is None:
            sigma = (al * be).sum(-1)  # [R]
            main = torch.einsum("bir,bjr->bij", a * sigma, b)
            part = main + (a @ (al @ bk))[:, :, None] + (b @ (be @ bq))[:, None, :] + n * (bq @ bk)
        else:
            cos, sin = rotary
            Q = apply_rope(a.permute(2, 0, 1)[..., None] * al[:, None, None, :], cos, sin)  # [R, B, T, e]
            K = apply_rope(b.permute(2, 0, 1)[..., None] * be[:, None, None, :], cos, sin)
            Qb = apply_rope(bq.expand(B, T, -1), cos, sin)  # [B, T, e]
            Kb = apply_rope(bk.expand(B, T, -1), cos, sin)
            main = torch.einsum("rbie,rbje->bij", Q, K)
            part = (
                main
                + torch.einsum("bie,bje->bij", Q.sum(0), Kb)
                + torch.einsum("bie,bje->bij", Qb, K.sum(0))
                + n * torch.einsum("bie,bje->bij", Qb, Kb)
            )
        part = part * hf.scale
        total = part if total is None else total + part
    if total is None:
        raise ValueError("an assembled unit needs at least one component")
    return total


def model_mask(mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """Additive [B, T, T] mask as the model applies it (padding keys; future keys for decoders)."""
    B, T = mask.shape
    allowed = mask.bool()[:, None, :].expand(B, T, T)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()[None]
    return torch.zeros(B, T, T).masked_fill(~allowed, float("-inf"))


def share(logits: torch.Tensor, amask: torch.Tensor) -> torch.Tensor:
    """Attention share within a subspace: softmax over every key the model lets the query see."""
    return torch.softmax(logits + amask, dim=-1).nan_to_num(0.0)
