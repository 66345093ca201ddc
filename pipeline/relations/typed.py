"""Typed relations: the QK units ``qkgraph eval`` found for dependency relations, with their gates and
calibration maps, and the one function that scores them on the words of a sentence.

A *typed relation* is a relational subspace with a name. Its unit (a raw head, a head's top-k
truncation, or rank-1 components of several heads of one layer, logits summed) says where each word
points: the word's argmax partner under the word-pooled attention share of the unit. Its gate says
whether that pair is an instance of the relation. Its calibration map turns ``gate x share`` into the
probability, measured on gold dependency trees, that the pair is a gold arc of the relation.

``score_words`` is what ingestion, ``identify_relation_types`` and the evaluation all call; the gate
features are built by ``endpoint_features`` on both sides (fitting and scoring).

The set of a model lives in its label artifact (``pipeline/data/labels-<model>.json``, section
``relations``; see ``load_typed_relations``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pipeline.errors import QkgraphError
from pipeline.model.rope import apply_rope
from pipeline.model.units import HeadFactors, assembled_logits, head_coordinates, model_mask, share, unit_logits
from pipeline.relations.calibration import compress_knots, isotonic_predict
from pipeline.relations.gates import Gate
from pipeline.relations.words import WordBatch, masked_argmax, pool_to

GATE_KINDS = ("subspace", "residual", "query", "none")
"""Gate features: ``subspace`` the query word's coordinates on the unit's query directions (x_i.u_r)
and its partner's on the key directions (x_j.v_r); ``residual`` both words' residuals at the gate
layer; ``query`` the query word's residual only; ``none`` no gate (the share alone is calibrated)."""

ATTACHMENT_METHODS = ("attention", "rank_k", "assembled")
DIRECTIONS = ("dep2head", "head2dep", "visible")


class TypedRelationsMissingError(QkgraphError, FileNotFoundError):
    """The model has no typed relation set (no ``relations`` section in its label artifact)."""


def calibration_command(model_name: str) -> str:
    """The command that builds (and ships into the package) the typed relation set of a model."""
    return f"qkgraph eval <gold.conllu, e.g. UD English EWT dev> --model {model_name} --write-labels"


@dataclass(frozen=True, eq=False)
class TypedRelation:
    """One dependency relation as the model's QK circuits compute it.

    Attributes:
        relation: the UD relation name (``nsubj``, ``obj``, ``nmod:poss``...).
        id: the unit id, ``qk:<relation>:<attachment id>``.
        layer: the layer of the unit.
        method: ``attention`` (a raw head), ``rank_k`` (a head's top-k truncation) or ``assembled``.
        components: (head, component) pairs of the unit's relational subspace (for ``attention`` every
            component of the head, for ``rank_k`` the first k).
        direction: how the unit was scored: ``dep2head`` (the query word is the dependent),
            ``head2dep`` (the query word is the head) or ``visible`` (decoders: the later word queries).
        head_side: which end of a (query, partner) pair is the head: ``key`` or ``query``. For
            ``visible`` units, the majority on the selection part.
        gate_kind: one of GATE_KINDS; gate: the fitted Gate (None for ``none``).
        knots: the isotonic calibration map (xs, ys) of gate x share -> probability.
        heldout: held-out figures the unit was chosen with (precision, recall, f1, returned at the
            default threshold).
        orientation_accuracy: for ``visible`` units, how often ``head_side`` is right on the
            held-out arcs the unit finds (1.0 by construction for the other directions).
        span_knots: the span calibration map (word-pair probability -> probability that a graph
            edge occurrence of this relation is right), or None (see ``span_probability``).
    """

    relation: str
    id: str
    layer: int
    method: str
    components: tuple[tuple[int, int], ...]
    direction: str
    head_side: str
    gate_kind: str
    gate: Gate | None
    knots: tuple[np.ndarray, np.ndarray]
    heldout: dict[str, Any] = field(default_factory=dict)
    orientation_accuracy: float | None = None
    span_knots: tuple[np.ndarray, np.ndarray] | None = None

    def span_probability(self, probability: float) -> float:
        """The probability an edge occurrence between two spans claims, from its word-pair probability.

        With a span calibration map (fitted on between-span occurrences of the selection part through
        the ingest path): the lower of the word-pair probability and the map's value. The map may
        only lower a claim: fitted on one half of the gold data it is optimistic where it is high
        (on EWT dev it raised held-out recall but cost obj 5 points of precision), while where it is
        low it catches relations whose between-span occurrences are much worse than their word pairs
        (det: a third right between spans, nine in ten between words)."""
        if self.span_knots is None:
            return float(probability)
        mapped = float(isotonic_predict(self.span_knots, np.asarray([probability], dtype=np.float64))[0])
        return min(float(probability), mapped)

    def __post_init__(self) -> None:
        if self.method not in ATTACHMENT_METHODS:
            raise ValueError(f"{self.id}: method must be one of {ATTACHMENT_METHODS}, got {self.method!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.id}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.head_side not in ("query", "key"):
            raise ValueError(f"{self.id}: head_side must be 'query' or 'key', got {self.head_side!r}")
        if self.gate_kind not in GATE_KINDS:
            raise ValueError(f"{self.id}: gate kind must be one of {GATE_KINDS}, got {self.gate_kind!r}")
        if (self.gate is None) != (self.gate_kind == "none"):
            raise ValueError(
                f"{self.id}: a {self.gate_kind!r} gate {'needs' if self.gate is None else 'has no'} weights"
            )
        if not self.components:
            raise ValueError(f"{self.id}: a typed relation needs at least one component")

    @property
    def heads(self) -> tuple[int, ...]:
        return tuple(sorted({h for h, _ in self.components}))

    @property
    def rank(self) -> int:
        return len(self.components)

    @property
    def gate_layer(self) -> int:
        """The layer whose residuals feed the gate (the unit's layer for a subspace gate)."""
        return self.layer if self.gate is None or self.gate_kind == "subspace" else self.gate.layer

    def directions(self, hf: HeadFactors) -> tuple[torch.Tensor, torch.Tensor]:
        """The unit's query and key directions, U_C and V_C: each [d_model, rank] (u_r and v_r)."""
        U = torch.stack([hf.U[h][:, r] for h, r in self.components], 1)
        V = torch.stack([hf.V[h][:, r] for h, r in self.components], 1)
        return U, V

    def logits(self, hf: HeadFactors, x: torch.Tensor, rotary, coords=None) -> torch.Tensor:
        """Scaled subword logits of the unit, [B, T, T] (biases and RoPE included; no mask).
        ``coords``: ``head_coordinates(hf, x)`` if already computed for the layer."""
        if self.method == "assembled":
            return assembled_logits(hf, x, rotary, self.components, coords)
        head = self.components[0][0]
        k = len(self.components)
        return _truncated_head_logits(hf, x, rotary, head, k, coords)

    def calibrate(self, score: torch.Tensor | np.ndarray) -> np.ndarray:
        """Probability that a pair with this ``gate x share`` is a gold arc of the relation."""
        return isotonic_predict(self.knots, np.asarray(score, dtype=np.float64))

    def __repr__(self) -> str:
        return f"TypedRelation({self.relation}: {self.id}, rank={self.rank}, gate={self.gate_kind})"


def _truncated_head_logits(hf: HeadFactors, x: torch.Tensor, rotary, head: int, k: int, coords=None) -> torch.Tensor:
    """One head's top-k truncation logits [B, T, T]; k = d_head gives the head's own logits."""
    if coords is None:
        a, b = x @ hf.U[head][:, :k], x @ hf.V[head][:, :k]
    else:
        a, b = coords[0][head][..., :k], coords[1][head][..., :k]
    q = a @ hf.alpha[head][:, :k].T + hf.b_q[head]
    kk = b @ hf.beta[head][:, :k].T + hf.b_k[head]
    if rotary is not None:
        q, kk = apply_rope(q, *rotary), apply_rope(kk, *rotary)
    return torch.einsum("bie,bje->bij", q, kk) * hf.scale


def endpoint_features(
    kind: str, query: torch.Tensor, partner: torch.Tensor, directions: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """The gate's input for pairs (i, j): ``query`` [N, d] and ``partner`` [N, d] are the word-pooled
    residuals of i and of the word j it attaches to, at the gate layer (the unit's layer for a subspace
    gate). ``directions``: (U_C, V_C) of the unit, for ``subspace``. Returns [N, F] in float32."""
    if kind == "residual":
        return torch.cat([query.float(), partner.float()], 1)
    if kind == "query":
        return query.float()
    if kind == "subspace":
        if directions is None:
            raise ValueError("a subspace gate needs the unit's directions (U_C, V_C)")
        U, V = directions
        return torch.cat([query.float() @ U.float(), partner.float() @ V.float()], 1)
    raise ValueError(f"no features for gate kind {kind!r}; expected one of {GATE_KINDS[:3]}")


@dataclass
class WordScores:
    """What one typed relation says about every word of a WordBatch, flattened as ``wb.gidx``.

    Shapes: partner [N] (local index of the word the query word attaches to, -1 none), share [N]
    (word-pooled attention share of that partner), gate [N] (1 without a gate), probability [N]
    (calibrated gate x share; 0 without a partner).
    """

    partner: torch.Tensor
    share: torch.Tensor
    gate: torch.Tensor
    probability: torch.Tensor


def word_features(wb: WordBatch, x: torch.Tensor) -> torch.Tensor:
    """Word-pooled residuals [N, d]: the mean over each word's subwords, flattened as ``wb.gidx``."""
    f = torch.einsum("but,btd->bud", wb.m_avg, x.float())
    return f[wb.bidx, wb.uidx]


def unit_key(t: TypedRelation) -> tuple[str, int, tuple[tuple[int, int], ...]]:
    """The unit a typed relation scores with (several relations may share one): (method, layer,
    components), the key of ``score_words``' attachments."""
    return (t.method, t.layer, t.components)


def hides_later_keys(amask: torch.Tensor) -> bool:
    """Whether the additive mask [B, T, T] hides every key j > i of every query i (-inf there), so
    logits above the diagonal never reach the softmax. Read off the mask itself rather than the
    model's kind, so a wrong assumption can only cost time, never change a score."""
    T = amask.shape[-1]
    if T < 2:
        return True
    later = torch.ones(T, T, dtype=torch.bool).triu(1)
    return bool(torch.isneginf(amask[:, later]).all())


def _attachments(
    units: Sequence[tuple[str, int, tuple[tuple[int, int], ...]]],
    factors: dict[int, HeadFactors],
    residuals: dict[int, torch.Tensor],
    rotary,
    amask: torch.Tensor,
    wb: WordBatch,
    budget: int = 1 << 23,
) -> dict:
    """(partner [N], share [N]) of each unit: the units of a layer in one ``unit_logits``, then the
    masked softmax, the pooling to words and the argmax of several units at once (as many as keep
    the stacked [n, B, T, T] logits within ``budget`` elements). Under RoPE and a mask that hides every
    later key (``hides_later_keys``) only the lower triangle of the assembled units' logits is computed."""
    out: dict = {}
    by_layer: dict[int, list] = {}
    for u in units:
        by_layer.setdefault(u[1], []).append(u)
    pending: list[tuple[list, torch.Tensor]] = []
    size = 0

    def flush() -> None:
        nonlocal pending, size
        if not pending:
            return
        logits = pending[0][1] if len(pending) == 1 else torch.cat([lg for _, lg in pending])
        p, v = masked_argmax(pool_to(share(logits, amask), wb), wb)
        v = v.nan_to_num(0.0, neginf=0.0)
        for n, u in enumerate(uu for us, _ in pending for uu in us):
            out[u] = (p[n], v[n])
        pending, size = [], 0

    # only the RoPE assembled units compute less under a causal mask: no check without RoPE
    causal = rotary is not None and hides_later_keys(amask)
    for layer, us in by_layer.items():
        keys = [("assembled" if m == "assembled" else "truncated", comps) for m, _, comps in us]
        logits = unit_logits(factors[layer], residuals[layer].float(), rotary, keys, causal=causal)
        if size and size + logits.numel() > budget:
            flush()
        pending.append((us, logits))
        size += logits.numel()
    flush()
    return out


def _folded_gates(gates: Sequence[Gate]) -> tuple[torch.Tensor, torch.Tensor]:
    """The weights [F, n] and biases [n] of several gates on raw features, in float64."""
    folded = [g.folded() for g in gates]
    return torch.stack([w for w, _ in folded], 1), torch.tensor([b for _, b in folded], dtype=torch.float64)


def score_words(
    typed: Sequence[TypedRelation],
    factors: dict[int, HeadFactors],
    residuals: dict[int, torch.Tensor],
    rotary,
    amask: torch.Tensor,
    wb: WordBatch,
    attachments: dict | None = None,
) -> dict[str, WordScores]:
    """Score every typed relation on every word of a batch.

    ``factors``: layer -> HeadFactors of each unit's layer; ``residuals``: layer -> [B, T, d] the
    normalised residuals entering Q/K (unit layers and gate layers); ``rotary``: (cos, sin) in float32
    or None; ``amask``: [B, T, T] the model's additive mask. ``attachments``: a dict kept by the
    caller across calls on the same batch, so typed relations sharing one unit (the same relation
    under several gate kinds) compute its attachment once. Returns relation -> WordScores.

    Equal to ``score_words_reference`` up to float rounding, computed in a few batched products: the
    units of a layer together (``unit_logits``), and the residual and query gates of a gate layer in
    one float64 product per side (the standardisation folded into the weights), the partner half
    gathered by partner.
    """
    if rotary is not None and not bool((rotary[0] == rotary[0][:1]).all()):
        return score_words_reference(typed, factors, residuals, rotary, amask, wb, attachments)
    B, U = wb.cand.shape[:2]
    flat = torch.full((B, U), -1, dtype=torch.long)
    flat[wb.bidx, wb.uidx] = torch.arange(len(wb.bidx))
    seen: dict = attachments if attachments is not None else {}
    todo = list(dict.fromkeys(unit_key(t) for t in typed if unit_key(t) not in seen))
    if todo:
        seen.update(_attachments(todo, factors, residuals, rotary, amask, wb))
    arange = torch.arange(len(wb.bidx))
    partners: dict[str, torch.Tensor] = {}
    for t in typed:
        pred = seen[unit_key(t)][0]
        partners[t.relation] = torch.where(pred >= 0, flat[wb.bidx, pred.clamp(min=0)], arange)
    # gates: per gate layer and kind, every relation's logit in one product per side
    gates: dict[str, torch.Tensor] = {}
    groups: dict[tuple[int, str], list[TypedRelation]] = {}
    feats: dict[int, torch.Tensor] = {}
    for t in typed:
        if t.gate is None:
            continue
        if t.gate_layer not in feats:
            feats[t.gate_layer] = word_features(wb, residuals[t.gate_layer])
        if t.gate_kind in ("residual", "query"):
            groups.setdefault((t.gate_layer, t.gate_kind), []).append(t)
        else:
            f = feats[t.gate_layer]
            dirs = t.directions(factors[t.layer])
            gates[t.relation] = t.gate.prob(endpoint_features(t.gate_kind, f, f[partners[t.relation]], dirs))
    for (layer, kind), ts in groups.items():
        f = feats[layer].double()
        d = f.shape[1]
        W, b = _folded_gates([t.gate for t in ts if t.gate is not None])
        z = f @ W[:d] + b  # [N, n]
        if kind == "residual":
            zk = f @ W[d:]
            idx = torch.stack([partners[t.relation] for t in ts], 1)
            z = z + zk.gather(0, idx)
        g = torch.sigmoid(z).float()
        for n, t in enumerate(ts):
            gates[t.relation] = g[:, n]
    out: dict[str, WordScores] = {}
    for t in typed:
        pred, top = seen[unit_key(t)]
        gate = gates[t.relation] if t.relation in gates else torch.ones_like(top)
        prob = torch.from_numpy(t.calibrate((gate * top).numpy())).float()
        prob[pred < 0] = 0.0
        out[t.relation] = WordScores(pred, top, gate, prob)
    return out


def score_words_reference(
    typed: Sequence[TypedRelation],
    factors: dict[int, HeadFactors],
    residuals: dict[int, torch.Tensor],
    rotary,
    amask: torch.Tensor,
    wb: WordBatch,
    attachments: dict | None = None,
) -> dict[str, WordScores]:
    """``score_words`` the straightforward way, one unit and one gate at a time (the definition
    ``score_words`` is tested against; also its path for batches whose rows are not all at
    positions 0..T-1 under RoPE).

    ``factors``: layer -> HeadFactors of each unit's layer; ``residuals``: layer -> [B, T, d] the
    normalised residuals entering Q/K (unit layers and gate layers); ``rotary``: (cos, sin) in float32
    or None; ``amask``: [B, T, T] the model's additive mask. ``attachments``: a dict kept by the
    caller across calls on the same batch, so typed relations sharing one unit (the same relation
    under several gate kinds) compute its attachment once. Returns relation -> WordScores.
    """
    B, U = wb.cand.shape[:2]
    flat = torch.full((B, U), -1, dtype=torch.long)
    flat[wb.bidx, wb.uidx] = torch.arange(len(wb.bidx))
    feats: dict[int, torch.Tensor] = {}
    coords: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    out: dict[str, WordScores] = {}
    seen: dict = attachments if attachments is not None else {}
    for t in typed:
        unit = (t.method, t.layer, t.components)
        if unit not in seen:
            x = residuals[t.layer].float()
            if t.layer not in coords:  # every head's coordinates of the layer, in one product each
                coords[t.layer] = head_coordinates(factors[t.layer], x)
            sh = share(t.logits(factors[t.layer], x, rotary, coords[t.layer])[None], amask)
            p, v = masked_argmax(pool_to(sh, wb), wb)
            seen[unit] = (p[0], v[0].nan_to_num(0.0, neginf=0.0))
        pred, top = seen[unit]
        has = pred >= 0
        partner_flat = torch.where(has, flat[wb.bidx, pred.clamp(min=0)], torch.arange(len(pred)))
        if t.gate is None:
            g = torch.ones_like(top)
        else:
            layer = t.gate_layer
            if layer not in feats:
                feats[layer] = word_features(wb, residuals[layer])
            f = feats[layer]
            dirs = t.directions(factors[t.layer]) if t.gate_kind == "subspace" else None
            g = t.gate.prob(endpoint_features(t.gate_kind, f, f[partner_flat], dirs))
        prob = torch.from_numpy(t.calibrate((g * top).numpy())).float()
        prob[~has] = 0.0
        out[t.relation] = WordScores(pred, top, g, prob)
    return out


def score_batch(
    ex, typed: Sequence[TypedRelation], factors: dict[int, HeadFactors], wb: WordBatch
) -> dict[str, WordScores]:
    """``score_words`` on a WordBatch after one forward pass of ``ex``'s model (a
    KnowledgeGraphExtractor), stopped after the deepest layer the units and gates need."""
    from pipeline.model.activations import capture

    layers = sorted({t.layer for t in typed} | {t.gate_layer for t in typed})
    acts = capture(ex.adapter, wb.ids.to(ex.device), wb.mask.to(ex.device), layers=layers, stop_early=True)
    rot = None if acts.rotary is None else (acts.rotary[0].float().cpu(), acts.rotary[1].float().cpu())
    residuals = {layer: acts.residuals[layer].float().cpu() for layer in layers}
    return score_words(typed, factors, residuals, rot, model_mask(wb.mask, ex.adapter.causal), wb)


# ── the artifact ────────────────────────────────────────────────────────────────────────────────


def typed_relation_from_json(relation: str, entry: dict) -> TypedRelation:
    """A TypedRelation from its entry in the artifact's ``relations`` section."""
    unit = entry["unit"]
    gate_json = entry.get("gate")
    kind = entry.get("gate_kind", "none" if gate_json is None else gate_json.get("features", "residual"))
    cal = entry["calibration"]
    return TypedRelation(
        relation=relation,
        id=unit["id"],
        layer=int(unit["layer"]),
        method=unit["method"],
        components=tuple((int(h), int(r)) for h, r in unit["components"]),
        direction=unit["direction"],
        head_side=unit["head_side"],
        gate_kind=kind,
        gate=None if gate_json is None else Gate.from_json(gate_json),
        knots=(np.asarray(cal["x"], dtype=np.float64), np.asarray(cal["y"], dtype=np.float64)),
        heldout=dict(entry.get("heldout", {})),
        orientation_accuracy=unit.get("orientation_accuracy"),
        span_knots=None
        if not entry.get("span_calibration")
        else (
            np.asarray(entry["span_calibration"]["x"], dtype=np.float64),
            np.asarray(entry["span_calibration"]["y"], dtype=np.float64),
        ),
    )


def typed_relation_to_json(t: TypedRelation, extra: dict | None = None) -> dict:
    """The artifact entry of a TypedRelation (its calibration knots compressed)."""
    xs, ys = compress_knots(*t.knots)
    entry: dict[str, Any] = {
        "unit": {
            "id": t.id,
            "method": t.method,
            "layer": t.layer,
            "components": [list(c) for c in t.components],
            "direction": t.direction,
            "head_side": t.head_side,
            "orientation_accuracy": t.orientation_accuracy,
        },
        "gate_kind": t.gate_kind,
        "gate": None if t.gate is None else {**t.gate.to_json(), "features": t.gate_kind},
        "calibration": {
            "x": xs,
            "y": ys,
            "score": "gate x word-level attention share of (query word, its argmax partner)",
            "target": f"the pair is a gold {t.relation} arc",
        },
        "heldout": dict(t.heldout),
    }
    if t.span_knots is not None:
        sx, sy = compress_knots(*t.span_knots)
        entry["span_calibration"] = {"x": sx, "y": sy}
    if extra:
        entry.update(extra)
    return entry
