"""The gate of a typed relation: logistic regression on features of the querying word and of the word
it attaches to (see ``pipeline.relations.typed.endpoint_features`` for the feature kinds), with the
gate layer and L2 strength chosen on an inner split of the selection part."""

from __future__ import annotations

import numpy as np
import torch

PROBE_ITERS = 30  # L-BFGS iterations when comparing gate layers (the final fit runs to convergence)
GATE_ON = 0.5
"""A gate fires (the pair is typed with its relation) at p >= GATE_ON."""


def fit_logistic(X: torch.Tensor, y: torch.Tensor, l2: float, iters: int = 100) -> tuple[torch.Tensor, float]:
    """L2-regularised logistic regression by Newton-free L-BFGS in float64. Returns (w, b)."""
    X = X.double()
    y = y.double()
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=iters,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

    def closure():
        opt.zero_grad()
        z = X @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), float(b.detach())


class Gate:
    """P(word i is the querying end of a gold arc of the relation | features), logistic.

    Features (standardised with the selection part's mean and std), by ``features``:
    ``residual``: [r_l(i), r_l(j)], r_l the mean over a word's subwords of the normalised residual
    entering Q/K of ``layer`` and j the word the unit attaches i to (its argmax); ``query``: r_l(i);
    ``subspace``: [r_l(i).U_C, r_l(j).V_C], the two words' coordinates on the unit's own
    relational subspace (l is the unit's layer).
    """

    def __init__(
        self,
        layer: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        w: torch.Tensor,
        b: float,
        l2: float,
        endpoints: str = "query",
        features: str | None = None,
    ) -> None:
        self.layer, self.mean, self.std, self.w, self.b, self.l2 = layer, mean, std, w, b, l2
        self.endpoints = endpoints
        self.features = features or ("residual" if endpoints == "query+key" else "query")

    def prob(self, X: torch.Tensor) -> torch.Tensor:
        z = ((X.double() - self.mean) / self.std) @ self.w + self.b
        return torch.sigmoid(z).float()

    def folded(self) -> tuple[torch.Tensor, float]:
        """(w, b) on raw features: p = sigmoid(X @ w + b), the standardisation folded in."""
        w = self.w / self.std
        return w, float(self.b - (w * self.mean).sum())

    def to_json(self) -> dict:
        what = f"mean over the word's subwords of the normalised residual entering Q/K of layer {self.layer}"
        if self.features == "subspace":
            what = (
                f"coordinates of the query word on the unit's query directions (x.u_r) and of the word it "
                f"attaches to on its key directions (x.v_r), x the {what}"
            )
        elif self.endpoints == "query+key":
            what += " for the query word, then the same for the word it attaches to (concatenated)"
        else:
            what += " for the query word"
        w, b = self.folded()
        return {
            "kind": "logistic",
            "features": self.features,
            "endpoints": self.endpoints,
            "feature": what,
            "formula": "p = sigmoid(weights . features + bias)",
            "layer": self.layer,
            "l2": self.l2,
            "weights": [float(f"{float(v):.6g}") for v in w],
            "bias": float(f"{b:.8g}"),
        }

    @classmethod
    def from_json(cls, d: dict) -> Gate:
        w = torch.tensor(d["weights"], dtype=torch.float64)
        if "mean" in d:  # standardised form (mean/std kept apart)
            mean, std = torch.tensor(d["mean"], dtype=torch.float64), torch.tensor(d["std"], dtype=torch.float64)
        else:
            mean, std = torch.zeros_like(w), torch.ones_like(w)
        return cls(
            int(d["layer"]),
            mean,
            std,
            w,
            float(d["bias"]),
            float(d.get("l2", 0.0)),
            d.get("endpoints", "query"),
            d.get("features"),
        )


def _standardise(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    X = X.double()
    mean = X.mean(0)
    std = X.std(0).clamp(min=1e-6)
    return (X - mean) / std, mean, std


def _inner_loss(Z: torch.Tensor, y: torch.Tensor, inner: torch.Tensor, l2: float, iters: int = 100) -> float:
    w, b = fit_logistic(Z[inner], y[inner], l2, iters)
    z = Z[~inner] @ w + b
    return float(torch.nn.functional.binary_cross_entropy_with_logits(z, y[~inner].double()))


def fit_gate(
    features: dict,
    y: torch.Tensor,
    groups: np.ndarray,
    l2_grid=(1e-3, 1e-2, 1e-1),
    l2_probe: float = 1e-2,
    endpoints: str = "query",
    feature_kind: str | None = None,
) -> Gate:
    """Fit the gate on selection words. ``features``: layer -> [n, d] word features (or a callable
    returning them, so only one layer's features are materialised at a time). On a document-level
    inner split (even ``groups`` fit, odd ones validate) the layer is chosen with L2 = ``l2_probe``,
    then the L2 strength from ``l2_grid``; the gate is refitted on all selection words."""
    y = y.double()
    inner = torch.from_numpy(np.asarray(groups) % 2 == 0)
    usable = bool(inner.any() and (~inner).any() and 0 < y[inner].sum() < inner.sum())
    get = lambda l: features[l]() if callable(features[l]) else features[l]  # noqa: E731
    layers = sorted(features)
    layer = layers[-1]
    if usable and len(layers) > 1:
        losses = {}
        for l in layers:
            Z = _standardise(get(l))[0]
            losses[l] = _inner_loss(Z, y, inner, l2_probe, iters=PROBE_ITERS)
        layer = min(layers, key=lambda l: (losses[l], l))
    Z, mean, std = _standardise(get(layer))
    l2 = l2_probe
    if usable and len(l2_grid) > 1:
        l2 = min(l2_grid, key=lambda v: _inner_loss(Z, y, inner, v))
    elif len(l2_grid) == 1:
        l2 = l2_grid[0]
    w, b = fit_logistic(Z, y, l2)
    return Gate(layer, mean, std, w, b, l2, endpoints, feature_kind)
