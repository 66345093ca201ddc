"""Score -> precision calibration: isotonic regression by pool-adjacent-violators, and the knots
kept in the label artifact."""

from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.7
"""The calibrated-score threshold the report's precision and recall are quoted at."""
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""The thresholds of the held-out precision/recall sweep."""


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
