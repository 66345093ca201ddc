"""Relational subspaces of attention heads' query-key circuits, and typed token-pair relations.

A relational subspace is a set of components of one head's QK circuit W_QK^h = sum_r sigma_r u_r v_r^T
(see pipeline.circuit). Its pair score is the head's logit computed with the query and key projected
onto those components (in head space, biases included, RoPE applied by position):

    logit_C(i, j) = scale * (R_i (q_i^C + b_q)) . (R_j (k_j^C + b_k)),
    q_i^C = sum_{r in C} (x_i . u_r) alpha_r,   k_j^C = sum_{r in C} (x_j . v_r) beta_r

With C = all components this is exactly the model's own logit; without RoPE, or at equal positions,
the content part splits into the rank-1 terms sigma_r (x_i.u_r)(x_j.v_r).

The default relational subspace of a head is its rank-k truncation, k = the smallest rank holding 90%
of sum(sigma^2), at least 8 (a single rank-1 component makes every query of one sign pick the same
key, so it is kept for inspection, not as a relation type). Subspaces of a layer are ranked by their
*logit spread*: the mean, over query tokens of reference sentences, of the standard deviation over
keys of logit_C. A subspace whose logits do not vary across keys cannot prefer any key, however large
its singular values; the spread measures sigma and how strongly real residuals load on u and v at once.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from pipeline.model.activations import Activations, capture
from pipeline.model.adapters import AttentionAdapter, adapter_for
from pipeline.model.circuit import FactoredQK
from pipeline.model.rope import apply_rope
from pipeline.model.scoring import PairScorer, attention_share

if TYPE_CHECKING:
    from pipeline.model.units import HeadFactors
    from pipeline.relations.labels import TypedRelationSet
    from pipeline.relations.typed import TypedRelation

ENERGY = 0.9
MIN_RANK = 8


class UntypedSubspacesWarning(UserWarning):
    """The extractor has no typed relation set, so it returns untyped (spread-ranked) subspaces."""


@dataclass(frozen=True, eq=False)
class RelationalSubspace:
    """A set of components of one head's QK circuit, usable as a relation type.

    Shapes:
        sigma: [k]; U: [d_model, k] (query directions); V: [d_model, k] (key directions)
        query_map, key_map: [d_model, d_head] (x -> head-space query/key restricted to the components)
        b_q, b_k: [d_head]
    Attributes:
        id: stable relation-type id: ``L{layer}H{head}k{k}`` for the top-k truncation of a head,
            ``L{layer}H{head}c{r}`` for one component r, ``L{layer}H{head}c{r1}-{r2}-...`` otherwise.
        spread: the ranking criterion (mean over reference queries of the std over keys of the
            subspace logit); None when not ranked.
    """

    layer: int
    head: int
    kv_head: int
    components: tuple[int, ...]
    sigma: torch.Tensor
    U: torch.Tensor
    V: torch.Tensor
    query_map: torch.Tensor
    key_map: torch.Tensor
    b_q: torch.Tensor
    b_k: torch.Tensor
    scaling: float
    id: str
    spread: float | None = None

    @property
    def rank(self) -> int:
        return len(self.components)

    def __repr__(self) -> str:
        spread = "" if self.spread is None else f", spread={self.spread:.3f}"
        return f"RelationalSubspace({self.id}, rank={self.rank}, sigma_1={float(self.sigma[0]):.3f}{spread})"


@dataclass(frozen=True)
class TokenRelation:
    """A token-pair relation: query position i points at key position j through a subspace.

    For a typed relation: ``relation`` is the dependency name (``nsubj``), ``score`` the calibrated
    probability that the pair is a gold arc of it, ``unit`` the typed subspace's id, and ``head`` /
    ``dependent`` say which position is which. For an untyped subspace: ``relation`` is the subspace id,
    ``score`` the attention share within it, and ``unit``, ``head``, ``dependent`` are empty/None.
    """

    batch: int
    query: int
    key: int
    relation: str
    score: float
    unit: str = ""
    head: int | None = None
    dependent: int | None = None


@dataclass(frozen=True)
class SubspaceProjection:
    """Token coordinates on one subspace. Shapes: query, key [B, T, k] (x.u_r and x.v_r)."""

    subspace: RelationalSubspace | TypedRelation
    query: torch.Tensor
    key: torch.Tensor


def subspace_id(layer: int, head: int, components: Sequence[int]) -> str:
    comps = list(components)
    if len(comps) == 1:
        return f"L{layer}H{head}c{comps[0]}"
    if comps == list(range(len(comps))):
        return f"L{layer}H{head}k{len(comps)}"
    return f"L{layer}H{head}c" + "-".join(str(c) for c in comps)


def _reference_sentences() -> list[str]:
    data = json.loads(resources.files("pipeline").joinpath("data/reference_sentences.json").read_text("utf-8"))
    return list(data["sentences"])


class KnowledgeGraphExtractor:
    """Relational subspaces and typed token-pair relations for a supported Hugging Face model.

    Args:
        model: a loaded model (BERT-like, GPT-2, LLaMA/Mistral/Qwen2, GPT-NeoX), or an adapter.
        tokenizer: optional; gives special-token ids and reference sentences for ranking.
        scorer: maps subspace logits to pair scores (default: attention share within the subspace).
        energy, min_rank: the truncation rule of a head's default subspace.
        typed_relations: the model's typed relation set, or the model name to load it by
            (``load_model``'s name, e.g. ``"all-minilm-l6-v2"``, ``"smollm2"``); see
            ``use_typed_relations``. Without one, ``extract_relational_subspaces`` returns untyped
            subspaces (with a warning).
    """

    def __init__(
        self,
        model: nn.Module | AttentionAdapter,
        tokenizer: Any = None,
        scorer: PairScorer = attention_share,
        energy: float = ENERGY,
        min_rank: int = MIN_RANK,
        typed_relations: TypedRelationSet | str | None = None,
    ) -> None:
        self.adapter = model if isinstance(model, AttentionAdapter) else adapter_for(model)
        self.model = self.adapter.model
        self.tokenizer = tokenizer
        self.scorer = scorer
        self.energy = energy
        self.min_rank = min_rank
        self._circuits: dict[tuple[int, int], FactoredQK] = {}
        self._biases: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._ranked: dict[tuple[int, str], list[RelationalSubspace]] = {}
        self.typed_relations: TypedRelationSet | None = None
        self._warned_untyped = False
        self._typed_factors: dict[int, HeadFactors] = {}  # by layer; see head_factors
        if typed_relations is not None:
            self.use_typed_relations(typed_relations)

    def use_typed_relations(self, typed: TypedRelationSet | str) -> TypedRelationSet:
        """Attach the model's typed relation set (or load it by model name); checks it fits the model.

        Raises TypedRelationsMissingError (naming the command that builds one) for a model without
        a set, ValueError for a set whose units do not fit this model's layers or heads."""
        from pipeline.relations.labels import load_typed_relations

        ts = load_typed_relations(typed) if isinstance(typed, str) else typed
        ad = self.adapter
        for t in ts.relations.values():
            bad_gate = t.gate is not None and t.gate_kind != "subspace" and not 0 <= t.gate.layer < ad.n_layers
            if (
                not 0 <= t.layer < ad.n_layers
                or any(not (0 <= h < ad.n_heads and 0 <= r < ad.d_head) for h, r in t.components)
                or bad_gate
            ):
                raise ValueError(
                    f"the typed relation set of {ts.model!r} ({ts.path}) does not fit this model "
                    f"({ad.n_layers} layers, {ad.n_heads} heads of {ad.d_head}): unit {t.id}"
                )
        self.typed_relations = ts
        self._typed_factors = {}
        return ts

    # -- basics ---------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def vocab_size(self) -> int:
        return int(self.adapter.embedding_matrix().shape[0])

    @cached_property
    def special_ids(self) -> torch.Tensor:
        ids = getattr(self.tokenizer, "all_special_ids", None) or []
        return torch.tensor(sorted(set(int(i) for i in ids)), dtype=torch.long)

    def _check_layer(self, layer_idx: int) -> None:
        if not isinstance(layer_idx, int) or not 0 <= layer_idx < self.adapter.n_layers:
            raise ValueError(f"layer_idx must be an int in [0, {self.adapter.n_layers - 1}], got {layer_idx!r}")

    def circuit(self, layer: int, head: int) -> FactoredQK:
        """The factored QK circuit of (layer, head), cached (SVD computed on first use)."""
        self._check_layer(layer)
        if not 0 <= head < self.adapter.n_heads:
            raise ValueError(f"head must be in [0, {self.adapter.n_heads - 1}], got {head}")
        key = (layer, head)
        if key not in self._circuits:
            qk = self.adapter.layer_qk(layer)
            g = self.adapter.kv_head(head)
            self._circuits[key] = FactoredQK(qk.w_q[head], qk.w_k[g])
            self._biases[layer] = (qk.b_q, qk.b_k)
        return self._circuits[key]

    def biases(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The query and key biases of ``layer``: b_Q [n_heads, d_head], b_K [n_kv_heads, d_head] (zeros if none)."""
        if layer not in self._biases:
            self.circuit(layer, 0)
        return self._biases[layer]

    def subspace(
        self, layer: int, head: int, components: Sequence[int] | None = None, k: int | None = None
    ) -> RelationalSubspace:
        """A subspace from explicit components, or the top-k truncation (k by the energy rule if None)."""
        c = self.circuit(layer, head)
        if components is None:
            k = c.truncation_rank(self.energy, self.min_rank) if k is None else k
            if not 1 <= k <= c.d_head:
                raise ValueError(f"k must be in [1, {c.d_head}], got {k}")
            components = list(range(k))
        comps = tuple(int(r) for r in components)
        if not comps or any(not 0 <= r < c.d_head for r in comps) or len(set(comps)) != len(comps):
            raise ValueError(f"components must be distinct ints in [0, {c.d_head - 1}], got {list(components)}")
        b_q, b_k = self._biases[layer]
        dt = self.dtype
        idx = torch.tensor(comps)
        return RelationalSubspace(
            layer=layer,
            head=head,
            kv_head=self.adapter.kv_head(head),
            components=comps,
            sigma=c.sigma[idx].to(dt),
            U=c.U[:, idx].to(dt),
            V=c.V[:, idx].to(dt),
            query_map=c.query_map(comps).to(dt),
            key_map=c.key_map(comps).to(dt),
            b_q=b_q[head].to(dt),
            b_k=b_k[self.adapter.kv_head(head)].to(dt),
            scaling=self.adapter.scaling(layer),
            id=subspace_id(layer, head, comps),
        )

    # -- inputs ---------------------------------------------------------------------------------
    def _as_batch(self, token_ids, attention_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(token_ids, torch.Tensor):
            ids = token_ids.detach().to(torch.long)
        else:
            if token_ids is None or len(token_ids) == 0:
                raise ValueError("token_ids must be a non-empty sequence of token ids (got an empty input)")
            if isinstance(token_ids[0], (list, tuple)):
                width = max(len(r) for r in token_ids)
                pad = 0
                ids = torch.full((len(token_ids), width), pad, dtype=torch.long)
                mask = torch.zeros((len(token_ids), width), dtype=torch.long)
                for b, row in enumerate(token_ids):
                    ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
                    mask[b, : len(row)] = 1
                if attention_mask is None:
                    attention_mask = mask
            else:
                ids = torch.tensor(list(token_ids), dtype=torch.long)
        if ids.ndim == 1:
            ids = ids.unsqueeze(0)
        if ids.ndim != 2 or ids.numel() == 0:
            raise ValueError(f"token_ids must be non-empty, shaped [T] or [B, T]; got shape {tuple(ids.shape)}")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(
                f"token_ids must lie in [0, {self.vocab_size - 1}] (the vocabulary); got values in [{lo}, {hi}]"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(ids)
        attention_mask = torch.as_tensor(attention_mask, dtype=torch.long)
        if attention_mask.ndim == 1:
            attention_mask = attention_mask.unsqueeze(0)
        if attention_mask.shape != ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} must match token_ids {tuple(ids.shape)}"
            )
        return ids.to(self.device), attention_mask.to(self.device)

    def activations(
        self, token_ids, attention_mask=None, layers: Sequence[int] | None = None, logits: bool = False
    ) -> Activations:
        """Contextual residuals entering Q/K (and optionally the model's logits) in one forward pass."""
        ids, mask = self._as_batch(token_ids, attention_mask)
        return capture(self.adapter, ids, mask, layers=layers, logits=logits)

    # -- scores ---------------------------------------------------------------------------------
    def model_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Additive [B, T, T] mask as the model applies it: padding keys, and future keys for decoders."""
        B, T = attention_mask.shape
        allowed = attention_mask.bool()[:, None, :].expand(B, T, T)
        if self.adapter.causal:
            allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=attention_mask.device).tril()[None]
        mask = torch.zeros(B, T, T, dtype=self.dtype, device=attention_mask.device)
        return mask.masked_fill(~allowed, float("-inf"))

    def subspace_logits(self, acts: Activations, subspaces: Sequence[RelationalSubspace]) -> torch.Tensor:
        """Scaled logits of each subspace, [S, B, T, T], biases and RoPE included (no mask)."""
        out = []
        for layer in sorted({s.layer for s in subspaces}):
            group = [s for s in subspaces if s.layer == layer]
            x = acts.residuals[layer]  # [B, T, d_model]
            mq = torch.stack([s.query_map for s in group])  # [S, d_model, d_head]
            mk = torch.stack([s.key_map for s in group])
            q = torch.einsum("btd,sde->sbte", x, mq) + torch.stack([s.b_q for s in group])[:, None, None, :]
            k = torch.einsum("btd,sde->sbte", x, mk) + torch.stack([s.b_k for s in group])[:, None, None, :]
            if acts.rotary is not None:
                cos, sin = acts.rotary
                q = apply_rope(q, cos, sin)
                k = apply_rope(k, cos, sin)
            scale = torch.tensor([s.scaling for s in group], dtype=q.dtype, device=q.device)
            out.append((group, torch.einsum("sbie,sbje->sbij", q, k) * scale[:, None, None, None]))
        # restore the caller's order
        position = {id(s): n for n, s in enumerate(subspaces)}
        result = torch.empty((len(subspaces),) + out[0][1].shape[1:], dtype=out[0][1].dtype, device=out[0][1].device)
        for group, logits in out:
            for g, s in enumerate(group):
                result[position[id(s)]] = logits[g]
        return result

    def decompose_logits(self, acts: Activations, layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the head's scaled logits into d_head query-component terms plus a bias term.

        Returns (components [d_head, B, T, T], bias [B, T, T]); their sum is the model's logit.
        Term r is scale * (R_i (x_i.u_r) alpha_r) . (R_j k_j) with k_j the full key (bias included);
        without RoPE its content part is sigma_r (x_i.u_r)(x_j.v_r). The bias term is
        scale * (R_i b_q) . (R_j k_j).
        """
        c = self.circuit(layer, head)
        b_q, b_k = self._biases[layer]
        dt = self.dtype
        x = acts.residuals[layer]
        a = x @ c.U.to(dt)  # [B, T, d_head] query coordinates
        parts = a.permute(2, 0, 1)[..., None] * c.alpha.to(dt).T[:, None, None, :]  # [r, B, T, d_head]
        qb = b_q[head].to(dt).expand_as(parts[0])[None]  # [1, B, T, d_head]
        k = x @ c.B.to(dt) + b_k[self.adapter.kv_head(head)].to(dt)  # [B, T, d_head]
        if acts.rotary is not None:
            cos, sin = acts.rotary
            parts, qb, k = apply_rope(parts, cos, sin), apply_rope(qb, cos, sin), apply_rope(k, cos, sin)
        scale = self.adapter.scaling(layer)
        terms = torch.einsum("rbie,bje->rbij", parts, k) * scale
        bias = torch.einsum("bie,bje->bij", qb[0], k) * scale
        return terms, bias

    # -- the public API of the seed ---------------------------------------------------------------
    def extract_relational_subspaces(
        self,
        layer_idx: int,
        top_k: int = 3,
        granularity: Literal["head", "component"] = "head",
        reference_ids: torch.Tensor | None = None,
        typed: bool | None = None,
    ) -> list[Any]:
        """The layer's ``top_k`` relational subspaces.

        Typed (the default when the extractor has a typed relation set, or ``typed=True``): the
        layer's typed relations (TypedRelation: a relational subspace with its dependency name, gate
        and calibration map), ranked by held-out labelled F1 at the default threshold, best first; a
        layer holds fewer than ``top_k`` of them, or none (the list is then shorter or empty).

        Untyped (``typed=False``, or no typed set: then with an UntypedSubspacesWarning), for
        exploration: RelationalSubspace objects ranked by logit spread on reference text.
        granularity="head": one candidate per head, its energy-rule truncation (id ``L3H9k12``).
        granularity="component": every rank-1 component of every head (id ``L3H9c0``), for inspection.
        reference_ids: [B, T] token ids to rank on; default: the packaged reference sentences through
        the tokenizer, or (without a tokenizer) 8 seeded random sequences of 32 tokens.
        """
        self._check_layer(layer_idx)
        if typed is None:
            typed = self.typed_relations is not None
            if not typed and not self._warned_untyped:
                self._warned_untyped = True
                from pipeline.relations.typed import calibration_command

                warnings.warn(
                    "this extractor has no typed relation set, so these subspaces are untyped (their pairs "
                    "carry subspace ids, not relation names); attach one with use_typed_relations(model "
                    f"name), or build one with `{calibration_command('<model>')}`",
                    UntypedSubspacesWarning,
                    stacklevel=2,
                )
        if typed:
            if self.typed_relations is None:
                from pipeline.relations.typed import TypedRelationsMissingError, calibration_command

                raise TypedRelationsMissingError(
                    "this extractor has no typed relation set: attach one with use_typed_relations(model name), "
                    f"or build one with `{calibration_command('<model>')}`"
                )
            if not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"top_k must be a positive int, got {top_k!r}")
            return self.typed_relations.ranked(layer_idx)[:top_k]
        if granularity not in ("head", "component"):
            raise ValueError(f"granularity must be 'head' or 'component', got {granularity!r}")
        n_heads, d_head = self.adapter.n_heads, self.adapter.d_head
        available = n_heads if granularity == "head" else n_heads * d_head
        if not isinstance(top_k, int) or not 1 <= top_k <= available:
            raise ValueError(
                f"top_k must be an int in [1, {available}] for layer {layer_idx} ({granularity}), got {top_k!r}"
            )
        cache_key = (layer_idx, granularity)
        if reference_ids is not None or cache_key not in self._ranked:
            if granularity == "head":
                candidates = [self.subspace(layer_idx, h) for h in range(n_heads)]
            else:
                candidates = [self.subspace(layer_idx, h, [r]) for h in range(n_heads) for r in range(d_head)]
            ids, mask = self._reference_batch(reference_ids)
            acts = capture(self.adapter, ids, mask, layers=[layer_idx], stop_early=True)
            spreads = self._spread(acts, candidates)
            ranked = sorted(
                (self._with_spread(s, float(v)) for s, v in zip(candidates, spreads)),
                key=lambda s: (-(s.spread or 0.0), s.head, s.components),
            )
            if reference_ids is not None:
                return ranked[:top_k]
            self._ranked[cache_key] = ranked
        return self._ranked[cache_key][:top_k]

    def project_token_embeddings(
        self,
        token_ids,
        subspaces: Sequence[RelationalSubspace],
        mode: Literal["contextual", "static"] = "contextual",
        attention_mask=None,
    ) -> list[SubspaceProjection]:
        """Coordinates of tokens on each subspace's query (x.u_r) and key (x.v_r) directions.

        mode="contextual": x is the residual entering the subspace's layer, normalised as the model
        normalises it before Q/K, from one batched no-grad forward pass. mode="static": x is the raw
        token embedding (no position, no norm), as the original extractor did.
        """
        subspaces = self._check_subspaces(subspaces, allow_typed=True)
        ids, mask = self._as_batch(token_ids, attention_mask)
        if mode == "static":
            emb = self.adapter.embedding_matrix().detach()[ids]
            xs = {s.layer: emb for s in subspaces}
        elif mode == "contextual":
            xs = capture(self.adapter, ids, mask, layers={s.layer for s in subspaces}, stop_early=True).residuals
        else:
            raise ValueError(f"mode must be 'contextual' or 'static', got {mode!r}")
        out = []
        for s in subspaces:
            if isinstance(s, RelationalSubspace):
                U, V = s.U, s.V
            else:
                U, V = s.directions(self.head_factors(s.layer))
            x = xs[s.layer]
            out.append(SubspaceProjection(s, x @ U.to(x.dtype), x @ V.to(x.dtype)))
        return out

    def relation_scores(
        self, token_ids, subspaces: Sequence[RelationalSubspace], attention_mask=None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dense pair scores [S, B, T, T] and the [B, T] endpoint mask (real, non-special tokens).

        Returns (scores, endpoint_ok, token_ids); scores come from ``self.scorer``.
        """
        subspaces = self._check_subspaces(subspaces)
        ids, mask = self._as_batch(token_ids, attention_mask)
        acts = capture(self.adapter, ids, mask, layers={s.layer for s in subspaces}, stop_early=True)
        return self.scores_from_activations(acts, subspaces), self.endpoint_mask(ids, mask), ids

    def scores_from_activations(self, acts: Activations, subspaces: Sequence[RelationalSubspace]) -> torch.Tensor:
        logits = self.subspace_logits(acts, subspaces)
        return self.scorer(logits, self.model_mask(acts.attention_mask))

    def endpoint_mask(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T] True where a token may be a relation endpoint: not padding, not a special token."""
        ok = mask.bool()
        if len(self.special_ids):
            ok = ok & ~torch.isin(ids, self.special_ids.to(ids.device))
        return ok

    def identify_relation_types(
        self,
        token_ids,
        subspaces: Sequence[RelationalSubspace],
        threshold: float = 0.7,
        attention_mask=None,
    ) -> list[TokenRelation]:
        """Token-pair relations with score >= threshold, sorted by batch, query, key, relation.

        Typed relations (from ``extract_relational_subspaces`` with a typed set): each non-special
        token is a word; a token i and the token j its unit attaches it to form a pair whose
        ``relation`` is the dependency name and whose ``score`` is the calibrated probability (gate x
        share through the calibration map) that (i, j) is a gold arc of it, with ``unit``, ``head``
        and ``dependent`` set. Untyped subspaces: every pair whose attention share within the subspace
        is >= threshold (see pipeline.model.scoring.attention_share), named by the subspace id.
        Special tokens, padding and i itself are never endpoints. An empty list of subspaces (a layer
        without typed relations) gives no relations.
        """
        if not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        items = [subspaces] if not isinstance(subspaces, (list, tuple)) else list(subspaces)
        from pipeline.relations.typed import TypedRelation

        typed = [s for s in items if isinstance(s, TypedRelation)]
        if isinstance(subspaces, (list, tuple)) and not items:
            return []
        out = self._typed_token_relations(token_ids, typed, float(threshold), attention_mask) if typed else []
        untyped = [s for s in items if not isinstance(s, TypedRelation)]
        if untyped:
            out += self._untyped_token_relations(token_ids, untyped, float(threshold), attention_mask)
        out.sort(key=lambda r: (r.batch, r.query, r.key, r.relation))
        return out

    def _untyped_token_relations(self, token_ids, subspaces, threshold: float, attention_mask) -> list[TokenRelation]:
        scores, ok, _ = self.relation_scores(token_ids, subspaces, attention_mask)
        _S, _B, T, _ = scores.shape
        pair_ok = ok[:, :, None] & ok[:, None, :] & ~torch.eye(T, dtype=torch.bool, device=ok.device)[None]
        hits = ((scores >= threshold) & pair_ok[None]).nonzero()  # [n, 4] = (s, b, i, j)
        values = scores[hits[:, 0], hits[:, 1], hits[:, 2], hits[:, 3]].tolist()
        ids = [s.id for s in subspaces]
        rel = [
            TokenRelation(batch=b, query=i, key=j, relation=ids[s], score=v)
            for (s, b, i, j), v in zip(hits.tolist(), values)
        ]
        return rel

    def head_factors(self, layer: int) -> HeadFactors:
        """The stacked SVD factors of every head of ``layer`` (``HeadFactors``), built once per layer
        and kept: the typed relations' unit maps and RoPE position terms are cached on them, so every
        caller that scores this extractor's units (``RelationExtractor``, ``identify_relation_types``)
        shares one copy of the factors and of those caches."""
        from pipeline.model.units import HeadFactors

        factors = self._typed_factors.get(layer)
        if factors is None:
            factors = self._typed_factors[layer] = HeadFactors(self, layer)
        return factors

    def _typed_token_relations(self, token_ids, typed, threshold: float, attention_mask) -> list[TokenRelation]:
        """Typed relations between tokens: every real, non-special token is one word."""
        from pipeline.relations.typed import score_batch
        from pipeline.relations.words import word_batch

        ids, mask = self._as_batch(token_ids, attention_mask)
        ok = self.endpoint_mask(ids, mask).cpu()
        B, T = ids.shape
        members = [[[t] for t in range(T) if ok[b, t]] for b in range(B)]
        if not any(members):
            return []
        wb = word_batch(ids.cpu(), mask.cpu(), members, self.adapter.causal)
        scores = score_batch(self, typed, {t.layer: self.head_factors(t.layer) for t in typed}, wb)
        bidx, uidx = wb.bidx, wb.uidx
        out = []
        for t in typed:
            ws = scores[t.relation]
            for n in torch.nonzero(ws.probability >= threshold).flatten().tolist():
                b, u, j = int(bidx[n]), int(uidx[n]), int(ws.partner[n])
                i_tok, j_tok = members[b][u][0], members[b][j][0]
                head, dep = (j_tok, i_tok) if t.head_side == "key" else (i_tok, j_tok)
                out.append(TokenRelation(b, i_tok, j_tok, t.relation, float(ws.probability[n]), t.id, head, dep))
        return out

    # -- helpers --------------------------------------------------------------------------------
    def _check_subspaces(self, subspaces, allow_typed: bool = False) -> list[Any]:
        from pipeline.relations.typed import TypedRelation

        kinds: tuple[type, ...] = (RelationalSubspace, TypedRelation) if allow_typed else (RelationalSubspace,)
        if isinstance(subspaces, kinds):
            subspaces = [subspaces]
        subspaces = list(subspaces or [])
        if not subspaces or not all(isinstance(s, kinds) for s in subspaces):
            raise ValueError(
                "subspaces must be a non-empty list of RelationalSubspace"
                + (" or TypedRelation" if allow_typed else "")
                + " (from extract_relational_subspaces)"
            )
        return subspaces

    def _with_spread(self, s: RelationalSubspace, spread: float) -> RelationalSubspace:
        from dataclasses import replace

        return replace(s, spread=spread)

    def _reference_batch(self, reference_ids) -> tuple[torch.Tensor, torch.Tensor]:
        if reference_ids is not None:
            return self._as_batch(reference_ids)
        if self.tokenizer is not None:
            enc = self.tokenizer(_reference_sentences(), return_tensors="pt", padding=True)
            return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, self.vocab_size, (8, 32), generator=gen)
        return ids.to(self.device), torch.ones_like(ids, device=self.device)

    def _spread(self, acts: Activations, subspaces: Sequence[RelationalSubspace], chunk: int = 64) -> torch.Tensor:
        """Mean over valid queries of the std over valid keys of each subspace's logits, [S]."""
        mask = self.model_mask(acts.attention_mask)  # [B, T, T]
        valid = torch.isfinite(mask)
        n_keys = valid.sum(-1)  # [B, T]
        q_ok = acts.attention_mask.bool() & (n_keys > 1)
        out = []
        for start in range(0, len(subspaces), chunk):
            logits = self.subspace_logits(acts, subspaces[start : start + chunk]).double()
            lv = logits.masked_fill(~valid[None], 0.0)
            mean = lv.sum(-1) / n_keys.clamp(min=1)[None]
            var = ((logits - mean[..., None]).masked_fill(~valid[None], 0.0) ** 2).sum(-1) / (n_keys - 1).clamp(min=1)[
                None
            ]
            std = var.sqrt()  # [S, B, T]
            out.append((std * q_ok[None]).sum((-1, -2)) / q_ok.sum().clamp(min=1))
        return torch.cat(out)
