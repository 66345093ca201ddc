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
        self._maps: dict = {}  # unit_logits' stacked maps of unit sets, by unit set


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


UnitKey = tuple[str, tuple[tuple[int, int], ...]]
"""A unit of one layer for ``unit_logits``: (``assembled`` or ``truncated``, its (head, r) components;
a truncated unit is the top-k truncation of one head, k = the number of its components)."""


def _truncated_maps(hf: HeadFactors, comps: Sequence[tuple[int, int]]):
    """A truncated unit's query and key maps (k = |comps| first components of one head), its query and
    key in head space: (P = U_k alpha_k^T [d, e], b_q, K = V_k beta_k^T, b_k)."""
    head, k = comps[0][0], len(comps)
    P = hf.U[head][:, :k] @ hf.alpha[head][:, :k].T
    K = hf.V[head][:, :k] @ hf.beta[head][:, :k].T
    return P, hf.b_q[head], K, hf.b_k[head]


def _assembled_terms(hf: HeadFactors, comps: Sequence[tuple[int, int]], truncated: bool = False):
    """The closed form of a unit without RoPE, as in ``assembled_logits``: (sigma_r of each component,
    w_q [d] with x_i.w_q = sum_h a_i.(alpha_h^T b_k), w_k [d] with x_j.w_k = sum_h b_j.(beta_h^T b_q),
    the constant sum_h |C_h| b_q.b_k), components in ``comps`` order by head. A truncated unit (one
    head's query and key, biases once) has the constant b_q.b_k."""
    sigma = []
    wq = torch.zeros(hf.U.shape[1])
    wk = torch.zeros(hf.U.shape[1])
    const = torch.zeros(())
    for h in sorted({h for h, _ in comps}):
        r_idx = torch.as_tensor([r for hh, r in comps if hh == h], dtype=torch.long)
        al, be = hf.alpha[h][:, r_idx].T, hf.beta[h][:, r_idx].T
        bq, bk = hf.b_q[h], hf.b_k[h]
        sigma.append((al * be).sum(-1))
        wq = wq + hf.U[h][:, r_idx] @ (al @ bk)
        wk = wk + hf.V[h][:, r_idx] @ (be @ bq)
        const = const + (1 if truncated else len(r_idx)) * (bq @ bk)
    return torch.cat(sigma), wq, wk, const


def _by_head(comps: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(h, r) for h in sorted({h for h, _ in comps}) for r in [r for hh, r in comps if hh == h]]


class _UnitMaps:
    """The units of one layer, prepared for ``unit_logits``.

    Without RoPE every unit is sum_r sigma_r a_ir b_jr + x_i.w_q + x_j.w_k + const (a truncated unit is
    the assembled unit of its k components: alpha_r.beta_s = sigma_r delta_rs), so one projection of
    the residuals on the distinct components of the layer's units (and each unit's w_q, w_k) gives
    every unit's query and key rows by a gather: [sigma_r a_ir ..., x_i.w_q, 1] and [b_jr ..., 1,
    x_j.w_k + const], padded with a zero column to one width. Under RoPE the truncated units are one
    rotated product each, stacked the same way (P = U_k alpha_k^T, biases b_q, b_k), and the assembled
    ones together through ``_RopeAssembled``."""

    def __init__(self, hf: HeadFactors, units: Sequence[UnitKey], rotary: bool) -> None:
        d = hf.U.shape[1]
        self.gathered: list[int] = []
        self.product: list[int] = []
        self.rope_assembled: list[int] = []
        for n, (kind, _) in enumerate(units):
            if not rotary:
                self.gathered.append(n)
            elif kind == "truncated":
                self.product.append(n)
            else:
                self.rope_assembled.append(n)
        if self.gathered:
            unit_comps = [_by_head(units[n][1]) for n in self.gathered]
            cols = sorted({c for cs in unit_comps for c in cs})
            where = {c: i for i, c in enumerate(cols)}
            nc, nu = len(cols), len(unit_comps)
            one, zero = nc + nu, nc + nu + 1
            terms = [_assembled_terms(hf, cs, units[n][0] == "truncated") for n, cs in zip(self.gathered, unit_comps)]
            self.width = max(len(cs) for cs in unit_comps) + 2
            P = torch.zeros(d, nc + nu + 2)
            K = torch.zeros(d, nc + nu + 2)
            P[:, :nc] = torch.stack([hf.U[h][:, r] for h, r in cols], 1)
            K[:, :nc] = torch.stack([hf.V[h][:, r] for h, r in cols], 1)
            p = torch.zeros(nc + nu + 2)
            k = torch.zeros(nc + nu + 2)
            p[one] = k[one] = 1.0
            iq = torch.full((nu, self.width), zero, dtype=torch.long)
            ik = torch.full((nu, self.width), zero, dtype=torch.long)
            sq = torch.zeros(nu, self.width)
            for u, (cs, (sigma, wq, wk, const)) in enumerate(zip(unit_comps, terms)):
                m = len(cs)
                P[:, nc + u] = wq
                K[:, nc + u] = wk
                k[nc + u] = const
                iq[u, :m] = ik[u, :m] = torch.as_tensor([where[c] for c in cs])
                sq[u, :m] = sigma
                iq[u, m], sq[u, m], ik[u, m] = nc + u, 1.0, one
                iq[u, m + 1], sq[u, m + 1], ik[u, m + 1] = one, 1.0, nc + u
            self.P, self.p, self.K, self.k = P, p, K, k
            self.iq, self.ik, self.sq = iq.flatten(), ik.flatten(), sq.flatten()
        if self.product:
            maps = [_truncated_maps(hf, units[n][1]) for n in self.product]
            self.e = maps[0][0].shape[1]
            self.tP = torch.cat([m[0] for m in maps], 1)  # [d, n * e]
            self.tp = torch.cat([m[1] for m in maps])
            self.tK = torch.cat([m[2] for m in maps], 1)
            self.tk = torch.cat([m[3] for m in maps])
        self.assembled = _RopeAssembled(hf, [units[n][1] for n in self.rope_assembled]) if self.rope_assembled else None


CACHED_POSITIONS = 64
"""``_RopeAssembled`` keeps its position-only terms for positions 0..CACHED_POSITIONS-1 (batches
longer than this get them computed afresh): three [P, P, R_u] float32 tensors per unit of R_u
components, P this (about 47 MB for SmolLM2's 14 assembled units of 59-74 components)."""

CAUSAL_BLOCK = 16
"""Query rows per block when only the lower triangle of the logits is wanted (``causal``)."""


class _RopeAssembled:
    """Every assembled unit of one layer under RoPE, scored together (``unit_logits``).

    Per unit with components C (per head h: b_q^h, b_k^h and its n_h components), a_ir = x_i.u_r,
    b_jr = x_j.v_r and R_i the rotation of position i, the unscaled logit is

        sum_r a_ir b_jr G_r(i, j) + sum_r a_ir Hq_r(i, j) + sum_r b_jr Mk_r(i, j) + N(i, j)

    with the position-only G_r(i, j) = (R_i alpha_r).(R_j beta_r), Hq_r(i, j) = (R_i alpha_r).(R_j
    b_k^h(r)), Mk_r(i, j) = (R_i b_q^h(r)).(R_j beta_r) and N(i, j) = sum_h n_h (R_i b_q^h).(R_j b_k^h)
    (``assembled_logits``' four terms, the rotation moved onto the factors). So per batch only a_ir
    and b_jr depend on the input: one projection of the residuals on the union of the layer's
    components (units of one layer share many), and the position terms are kept across batches for
    the first ``CACHED_POSITIONS`` positions (sliced to [:T, :T]), checked against the (cos, sin) of
    each call, so a caller with other rotary values gets them recomputed, never stale ones.

    Past the cache (long sentences, few rows) G is computed per batch as before, and the linear
    terms as products of the per-head sums sum_r a_ir R_i alpha_r with R_j b_k^h (cheaper than Hq
    and Mk when the batch has few rows).
    """

    def __init__(self, hf: HeadFactors, units: Sequence[Sequence[tuple[int, int]]]) -> None:
        unit_comps = [_by_head(cs) for cs in units]
        cols = sorted({c for cs in unit_comps for c in cs})
        where = {c: n for n, c in enumerate(cols)}
        # one projection for the whole layer: the union of the components of its units
        self.U = torch.stack([hf.U[h][:, r] for h, r in cols], 1)  # [d, C]
        self.V = torch.stack([hf.V[h][:, r] for h, r in cols], 1)
        self.alpha = torch.stack([hf.alpha[h][:, r] for h, r in cols])  # [C, e]
        self.beta = torch.stack([hf.beta[h][:, r] for h, r in cols])
        heads = sorted({h for h, _ in cols})
        self.b_q = torch.stack([hf.b_q[h] for h in heads])  # [n_heads, e]: the heads of any unit
        self.b_k = torch.stack([hf.b_k[h] for h in heads])
        self.col_head = torch.as_tensor([heads.index(h) for h, _ in cols])  # [C]: its row in b_q, b_k
        self.columns = [torch.as_tensor([where[c] for c in cs]) for cs in unit_comps]  # per unit, [R_u]
        # per unit: (row of the head in b_q, b_k; the unit's columns of that head), head by head
        self.head_columns = [
            [
                (heads.index(h), torch.as_tensor([where[(hh, r)] for hh, r in cs if hh == h]))
                for h in sorted({h for h, _ in cs})
            ]
            for cs in unit_comps
        ]
        # per unit: n_h of each head (its multiplicity in N), [n_heads]
        self.head_counts = [
            torch.bincount(self.col_head[idx], minlength=len(heads)).to(self.alpha.dtype) for idx in self.columns
        ]
        self._cache: tuple | None = None  # (cos, sin, per-unit terms) at CACHED_POSITIONS or fewer

    def _rotated(self, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """R_i alpha_r, R_j beta_r [C, T, e] and R_i b_q^h, R_j b_k^h [n_heads, T, e]."""
        T = cos.shape[0]
        return tuple(
            apply_rope(f[:, None, :].expand(-1, T, -1), cos, sin) for f in (self.alpha, self.beta, self.b_q, self.b_k)
        )

    def _terms(self, cos: torch.Tensor, sin: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Per unit (G, Hq, Mk [T, T, R_u], N [T, T]) at the positions of ``cos``, ``sin`` [T, e]."""
        ral, rbe, rbq, rbk = self._rotated(cos, sin)
        G = torch.einsum("rie,rje->ijr", ral, rbe)  # [T, T, C]
        Hq = torch.einsum("rie,rje->ijr", ral, rbk[self.col_head])
        Mk = torch.einsum("rie,rje->ijr", rbq[self.col_head], rbe)
        N = torch.einsum("hie,hje->hij", rbq, rbk)  # [n_heads, T, T]
        return [
            (
                G[..., idx].contiguous(),
                Hq[..., idx].contiguous(),
                Mk[..., idx].contiguous(),
                torch.einsum("h,hij->ij", n, N),
            )
            for idx, n in zip(self.columns, self.head_counts)
        ]

    def _position_terms(self, cos: torch.Tensor, sin: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """``_terms`` for T <= CACHED_POSITIONS, from the cache when it covers T positions with these
        very (cos, sin)."""
        T = cos.shape[0]
        cache = self._cache  # one read: a cache swapped in by another thread is whole or absent
        if cache is not None:
            c_cos, c_sin, terms = cache
            if c_cos.shape[0] >= T and torch.equal(c_cos[:T], cos) and torch.equal(c_sin[:T], sin):
                return [(G[:T, :T], Hq[:T, :T], Mk[:T, :T], N[:T, :T]) for G, Hq, Mk, N in terms]
        # a longer batch (or other rotary values): rebuild at its T; the caller's (cos, sin) cover only
        # the batch's positions, so the cache grows with the batches up to CACHED_POSITIONS and stays
        terms = self._terms(cos, sin)
        self._cache = (cos.clone(), sin.clone(), terms)
        return terms

    def logits(
        self, flat: torch.Tensor, B: int, T: int, cos: torch.Tensor, sin: torch.Tensor, causal: bool
    ) -> torch.Tensor:
        """Unscaled logits of every unit, [n_units, B, T, T], from the residuals ``flat`` [B*T, d] of
        rows at positions 0..T-1 (``cos``, ``sin`` [T, e]). ``causal``: only keys j <= i are computed
        (query rows in blocks of ``CAUSAL_BLOCK``, each up to its last row); the other entries are
        finite but meaningless, for a caller whose mask hides every later key."""
        a = (flat @ self.U).view(B, T, -1)  # [B, T, C]: a_ir for the union of the layer's components
        b = (flat @ self.V).view(B, T, -1)
        cached = T <= CACHED_POSITIONS
        terms: list[tuple[torch.Tensor, ...]] = []
        if cached:
            terms = self._position_terms(cos, sin)
        else:
            ral, rbe, rbq, rbk = self._rotated(cos, sin)
            G_all = torch.bmm(ral, rbe.transpose(1, 2))  # [C, T, T], component-major: gathered by rows
            N_all = torch.bmm(rbq, rbk.transpose(1, 2))  # [n_heads, T, T]
        # zeros, not empty: entries left out under ``causal`` must stay finite for the masked softmax
        out = torch.zeros(len(self.columns), B, T, T) if causal else torch.empty(len(self.columns), B, T, T)
        step = CAUSAL_BLOCK if causal else T
        for u, idx in enumerate(self.columns):
            if cached:
                G, Hq, Mk, N = terms[u]  # [T, T, R_u] (views of the cache)
                au, bu = a[..., idx], b[..., idx]  # [B, T, R_u]
            else:
                # component-major here: G [R_u, T, T] gathered by rows, a and b [R_u, B, T] to match
                G = G_all.index_select(0, idx)
                au, bu = a[..., idx].permute(2, 0, 1).contiguous(), b[..., idx].permute(2, 0, 1).contiguous()
                N = torch.einsum("h,hij->ij", self.head_counts[u], N_all)
                # the linear terms, all heads of the unit in one product: [sum_r a_ir R_i alpha_r ... |
                # R_i b_q^h ...] . [R_j b_k^h ... | sum_r b_jr R_j beta_r ...], each [B, T, 2 e n_heads]
                qs, ks, bq, bk = [], [], [], []
                for hr, hc in self.head_columns[u]:
                    qs.append(torch.einsum("bir,rie->bie", a[..., hc], ral[hc]))
                    ks.append(torch.einsum("bjr,rje->bje", b[..., hc], rbe[hc]))
                    bq.append(rbq[hr].expand(B, -1, -1))
                    bk.append(rbk[hr].expand(B, -1, -1))
                lin_q = torch.cat(qs + bq, -1)
                lin_k = torch.cat(bk + ks, -1).transpose(1, 2).contiguous()  # [B, 2 e n_heads, T]
            for start in range(0, T, step):
                stop = min(start + step, T)
                keys = stop if causal else T  # a causal block's rows see keys up to its last row
                if cached:
                    ai, bj = au[:, start:stop], bu[:, :keys]
                    # the content term as one broadcast product and sum over r: much cheaper here than a
                    # three-operand einsum, which permutes the [B, T, T, R] product for a batched matmul
                    block = (ai[:, :, None, :] * bj[:, None, :, :]).mul_(G[start:stop, :keys]).sum(-1)
                    block += torch.einsum("bir,ijr->bij", ai, Hq[start:stop, :keys])
                    block += torch.einsum("bjr,ijr->bij", bj, Mk[start:stop, :keys])
                else:
                    ai, bj = au[:, :, start:stop], bu[:, :, :keys]
                    block = (ai[..., None] * bj[:, :, None, :]).mul_(G[:, None, start:stop, :keys]).sum(0)
                    block += lin_q[:, start:stop] @ lin_k[..., :keys]
                block += N[start:stop, :keys]
                out[u, :, start:stop, :keys] = block
        return out


def unit_logits(
    hf: HeadFactors, x: torch.Tensor, rotary, units: Sequence[UnitKey], causal: bool = False
) -> torch.Tensor:
    """Scaled logits of several units of one layer, [n_units, B, T, T] (biases and RoPE included, no
    mask): equal, up to float rounding, to ``assembled_logits`` (``assembled`` units) and to a head's
    top-k truncation logits (``truncated``), computed together: every single-product unit (every unit
    without RoPE; truncated ones under RoPE) in one projection and one batched product, the assembled
    units under RoPE together by ``_RopeAssembled``. RoPE needs every row of the batch at positions
    0..T-1 (right padding), as ``component_logits`` does.

    ``causal``: the caller masks every key j > i (a decoder's mask), so only the lower triangle
    j <= i of each unit has to be right; the RoPE assembled units then skip most of the rest (the
    entries above the diagonal are finite, otherwise arbitrary). The other units are single matrix
    products, computed whole either way."""
    key = (tuple(units), rotary is not None)
    maps = hf._maps.get(key)
    if maps is None:
        maps = hf._maps[key] = _UnitMaps(hf, units, rotary is not None)
    B, T = x.shape[:2]
    flat = x.reshape(B * T, -1)
    parts: list[tuple[list[int], torch.Tensor]] = []
    if maps.gathered:
        n, w = len(maps.gathered), maps.width
        qa = torch.addmm(maps.p, flat, maps.P)  # [B*T, columns]
        kb = torch.addmm(maps.k, flat, maps.K)
        q = torch.index_select(qa, 1, maps.iq).mul_(maps.sq * hf.scale)
        k = torch.index_select(kb, 1, maps.ik)
        q = q.view(B, T, n, w).permute(2, 0, 1, 3).contiguous()  # [n, B, T, w]
        k = k.view(B, T, n, w).permute(2, 0, 3, 1).contiguous()  # [n, B, w, T]
        parts.append((maps.gathered, torch.matmul(q, k)))
    if maps.product or maps.rope_assembled:
        if rotary is None:
            raise ValueError("units scored as rotated products need the rotary (cos, sin)")
        cos, sin = rotary[0][0, :T], rotary[1][0, :T]  # every row at positions 0..T-1
        if maps.product:
            n, e = len(maps.product), maps.e
            q = torch.addmm(maps.tp, flat, maps.tP).view(B, T, n, e).permute(2, 0, 1, 3)  # [n, B, T, e]
            k = torch.addmm(maps.tk, flat, maps.tK).view(B, T, n, e).permute(2, 0, 1, 3)
            q, k = apply_rope(q, cos, sin) * hf.scale, apply_rope(k, cos, sin)
            parts.append((maps.product, torch.matmul(q, k.transpose(-1, -2))))
        if maps.assembled is not None:
            rope = maps.assembled.logits(flat, B, T, cos, sin, causal).mul_(hf.scale)
            parts.append((maps.rope_assembled, rope))
    if len(parts) == 1 and parts[0][0] == list(range(len(units))):
        return parts[0][1]
    out = torch.empty(len(units), B, T, T)
    for idx, lg in parts:
        out[idx] = lg
    return out


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
