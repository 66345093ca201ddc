"""Score -> precision calibration (isotonic regression by pool-adjacent-violators), the logistic
query gate of ``qk`` relation types, and the versioned relation-label artifact per model.

The artifact ``pipeline/data/labels-<model>.json`` (schema ``LABELS_SCHEMA``) is written by
``python -m pipeline.evaluation CONLLU --model M --write-labels`` and read here:

* ``load_relation_labels(model)`` -> {"L2H8k24": "amod (0.81)", "qk:det:L1H5k8": "det (0.95)", ...}
  for every subspace whose held-out accuracy reaches the artifact's accuracy floor;
* ``calibrate_score(model, subspace_id, score)`` -> estimated precision of a pair with that score
  (isotonic map fitted on the selection part of the gold data);
* ``load_gate(model, "qk:<relation>:<attachment>")`` -> the ``Gate`` that types a qk unit's pairs.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

LABELS_SCHEMA = "qkgraph.relation-labels/1"
PROBE_ITERS = 30  # L-BFGS iterations when comparing gate layers (the final fit runs to convergence)


# --------------------------------------------------------------------------------------------------
# Isotonic regression (pool adjacent violators)
# --------------------------------------------------------------------------------------------------


def isotonic_fit(x, y, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of y on x by pool-adjacent-violators.

    Returns interpolation knots (xs, ys), both non-decreasing: each pooled block contributes its
    lowest and highest x at the block's mean y. ``isotonic_predict`` interpolates linearly between
    knots and is flat outside them (sklearn's IsotonicRegression with out_of_bounds="clip").
    Equal x values are pooled first (their mean y), so ties never produce a vertical step.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if x.shape != y.shape or x.shape != w.shape or x.ndim != 1:
        raise ValueError("x, y and weights must be 1-D arrays of the same length")
    if len(x) == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 0.0])
    order = np.argsort(x, kind="stable")
    x, y, w = x[order], y[order], w[order]
    # pool ties
    ux, start = np.unique(x, return_index=True)
    wsum = np.add.reduceat(w, start)
    ysum = np.add.reduceat(w * y, start)
    # PAV over the unique x values: a stack of blocks (sum of w*y, sum of w, first x, last x)
    blocks: list[list[float]] = []
    for xv, ws, ys in zip(ux, wsum, ysum):
        blocks.append([ys, ws, xv, xv])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            ys2, ws2, _, hi = blocks.pop()
            blocks[-1][0] += ys2
            blocks[-1][1] += ws2
            blocks[-1][3] = hi
    xs, ys_out = [], []
    for s, ws, lo, hi in blocks:
        v = s / ws
        xs.append(lo)
        ys_out.append(v)
        if hi > lo:
            xs.append(hi)
            ys_out.append(v)
    return np.array(xs), np.array(ys_out)


def isotonic_predict(knots: tuple, x) -> np.ndarray:
    xs, ys = (np.asarray(k, dtype=np.float64) for k in knots)
    return np.interp(np.asarray(x, dtype=np.float64), xs, ys)


def _pav_strict(xs: np.ndarray, ys: np.ndarray) -> bool:
    """True when knots are a valid non-decreasing map (for tests)."""
    return bool(np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= -1e-12))


def compress_knots(xs: np.ndarray, ys: np.ndarray, max_points: int = 64) -> tuple[list[float], list[float]]:
    """Keep at most ``max_points`` knots (always the ends and the points where y changes most)."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(xs) > max_points:
        keep = {0, len(xs) - 1}
        jumps = np.argsort(-np.abs(np.diff(ys)))
        for j in jumps:
            if len(keep) >= max_points:
                break
            keep.update((int(j), int(j) + 1))
        idx = sorted(keep)[:max_points]
        xs, ys = xs[idx], ys[idx]
    return [round(float(v), 5) for v in xs], [round(float(v), 5) for v in ys]


# --------------------------------------------------------------------------------------------------
# The query-side gate: logistic regression on the querying word's residual
# --------------------------------------------------------------------------------------------------


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

    Features (standardised with the selection part's mean and std): r_l(i), the mean over word i's
    subwords of the normalised residual entering Q/K of ``layer``; with endpoints="query+key" the
    concatenation [r_l(i), r_l(j)] where j is the word the unit attaches i to (its argmax).
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
    ) -> None:
        self.layer, self.mean, self.std, self.w, self.b, self.l2 = layer, mean, std, w, b, l2
        self.endpoints = endpoints

    def prob(self, X: torch.Tensor) -> torch.Tensor:
        z = ((X.double() - self.mean) / self.std) @ self.w + self.b
        return torch.sigmoid(z).float()

    def folded(self) -> tuple[torch.Tensor, float]:
        """(w, b) on raw features: p = sigmoid(X @ w + b), the standardisation folded in."""
        w = self.w / self.std
        return w, float(self.b - (w * self.mean).sum())

    def to_json(self) -> dict:
        what = f"mean over the word's subwords of the normalised residual entering Q/K of layer {self.layer}"
        w, b = self.folded()
        return {
            "kind": "logistic",
            "endpoints": self.endpoints,
            "feature": what
            + (
                " for the query word, then the same for the word it attaches to (concatenated)"
                if self.endpoints == "query+key"
                else " for the query word"
            ),
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
            int(d["layer"]), mean, std, w, float(d["bias"]), float(d.get("l2", 0.0)), d.get("endpoints", "query")
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
    return Gate(layer, mean, std, w, b, l2, endpoints)


# --------------------------------------------------------------------------------------------------
# The label artifact
# --------------------------------------------------------------------------------------------------


def _slug(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-").lower()


def labels_path(model_name: str) -> Path:
    """Where the artifact of ``model_name`` lives in the package (pipeline/data/labels-<model>.json)."""
    return Path(str(resources.files("pipeline").joinpath(f"data/labels-{_slug(model_name)}.json")))


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict:
    data = json.loads(Path(path).read_text("utf-8"))
    if data.get("schema") != LABELS_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, expected {LABELS_SCHEMA!r}")
    return data


def load_labels_artifact(model_name: str, path: str | Path | None = None) -> dict:
    p = Path(path) if path is not None else labels_path(model_name)
    if not p.is_file():
        raise FileNotFoundError(
            f"no relation labels for model {model_name!r} at {p}; generate them with "
            f"`python -m pipeline.evaluation <gold.conllu> --model {model_name} --write-labels`"
        )
    return _load(str(p), p.stat().st_mtime)


def load_relation_labels(model_name: str, path: str | Path | None = None) -> dict[str, str]:
    """Subspace id -> "relation (held-out accuracy)" for the labelled subspaces and qk units, e.g.
    {"L2H8k24": "amod (0.81)"}. Subspaces below the artifact's accuracy floor are left out."""
    data = load_labels_artifact(model_name, path)
    out = {}
    for sid, entry in data["subspaces"].items():
        if entry.get("label"):
            out[sid] = f"{entry['label']} ({entry['accuracy']:.2f})"
    return out


def calibrate_score(model_name: str, subspace_id: str, score: float, path: str | Path | None = None) -> float:
    """Estimated precision (probability that the pair is a gold arc of the subspace's relation, in
    its direction) of a pair score. For a subspace the score is its attention share; for a ``qk:``
    unit it is gate(query) x share. Unknown ids raise KeyError."""
    data = load_labels_artifact(model_name, path)
    try:
        cal = data["subspaces"][subspace_id]["calibration"]
    except KeyError:
        raise KeyError(f"subspace {subspace_id!r} has no calibration in the labels of {model_name!r}") from None
    return float(isotonic_predict((cal["x"], cal["y"]), float(score)))


def load_gate(model_name: str, unit_id: str, path: str | Path | None = None) -> Gate:
    """The logistic gate of a ``qk:`` unit (p = gate.prob(features); see Gate for the features)."""
    data = load_labels_artifact(model_name, path)
    try:
        return Gate.from_json(data["subspaces"][unit_id]["gate"])
    except KeyError:
        raise KeyError(f"{unit_id!r} is not a gated qk unit in the labels of {model_name!r}") from None
