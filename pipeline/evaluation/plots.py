"""PNG figures of an evaluation: per-head accuracy heatmaps and the precision/recall curves of the
calibrated typed relations (the gate kind the set uses)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from pipeline.evaluation.corpus import ALL, HELDOUT, REL_ALL, SELECT
from pipeline.evaluation.report import BAR_RELATIONS, LABELLED_BAR
from pipeline.relations.calibration import DEFAULT_THRESHOLD

HEATMAP_RELATIONS = ("nsubj", "obj", "amod", "det", "case", "compound", "aux", "nmod:poss", "advmod", ALL)


def write_plots(
    plots_dir: Path, model: str, att_acc: torch.Tensor, L: int, H: int, sweep: dict, causal: bool
) -> list[str]:
    """Write ``<model>-heads.png`` (held-out accuracy of every attention head, ``att_acc``:
    [L * H, n_dirs, 2, len(REL_ALL)]) and ``<model>-calibration.png`` (the sweep's curves) to
    ``plots_dir``. Returns their paths."""
    # matplotlib is imported only when plots are asked for (slow import, headless backend)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    slug = model.replace("/", "-")
    paths = []
    rels = list(HEATMAP_RELATIONS)
    ncol = 5
    nrow = math.ceil(len(rels) / ncol)
    wide = H >= L
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, (2.6 if wide else 4.6) * nrow), squeeze=False)
    for ax, rel in zip(axes.flat, rels):
        r = REL_ALL.index(rel)
        # direction chosen on the selection part, per head
        di = att_acc[:, :, SELECT, r].argmax(1)
        held = att_acc[torch.arange(att_acc.shape[0]), di, HELDOUT, r].view(L, H).numpy() * 100
        im = ax.imshow(held, aspect="auto", cmap="viridis", vmin=0, vmax=max(held.max(), 1))
        ax.set_title(f"{rel} (best {held.max():.0f}%)", fontsize=9)
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in list(axes.flat)[len(rels) :]:
        ax.axis("off")
    fig.suptitle(
        f"{model}: held-out accuracy of each raw attention head (Clark et al.'s protocol{', visible direction' if causal else ''})",
        fontsize=10,
    )
    fig.tight_layout()
    p = plots_dir / f"{slug}-heads.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5))
    ts = np.array(sweep["thresholds"])
    k7 = int(np.argmin(np.abs(ts - DEFAULT_THRESHOLD)))
    for rel in list(BAR_RELATIONS) + ["unlabelled"]:
        row = sweep["labelled"][rel] if rel != "unlabelled" else sweep["unlabelled"]
        P = np.array([np.nan if v is None else v for v in row["precision"]], dtype=float)
        R = np.array(row["recall"], dtype=float)
        style = dict(lw=2.5, color="black") if rel == "unlabelled" else dict(lw=1.2)
        (line,) = a1.plot(R, P, marker=".", ms=3, label=rel, **style)
        a1.plot([R[k7]], [P[k7]], "o", color=line.get_color(), ms=7, mfc="none")
        a2.plot(ts, P, marker=".", ms=3, label=rel, **style)
    a1.axhline(LABELLED_BAR[0], ls=":", color="grey")
    a1.axvline(LABELLED_BAR[1], ls=":", color="grey")
    a1.set_xlabel("held-out recall")
    a1.set_ylabel("held-out precision")
    a1.set_title("calibrated typed relations (circle: threshold 0.7)")
    a1.set_xlim(0, 1)
    a1.set_ylim(0, 1.02)
    a1.legend(fontsize=8)
    a2.plot([0, 1], [0, 1], ls="--", color="grey", label="precision = threshold (calibrated curves should lie above)")
    a2.set_xlabel("threshold on the calibrated score")
    a2.set_ylabel("held-out precision of returned pairs")
    a2.set_title("calibration: threshold vs held-out precision")
    a2.set_xlim(0, 1)
    a2.set_ylim(0, 1.02)
    fig.suptitle(f"{model}", fontsize=10)
    fig.tight_layout()
    p = plots_dir / f"{slug}-calibration.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths
