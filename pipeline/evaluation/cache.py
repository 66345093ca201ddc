"""A disk cache of a pass's residuals, so later passes over the same batches need no forward pass."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from pipeline.evaluation.batching import WordBatch
from pipeline.model.activations import Activations


class ResidualCache:
    """The residuals (and RoPE cos/sin) of every batch of a pass, kept on disk in a temporary folder,
    so later passes over the same batches need no forward pass. One file per batch and layer."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qkgraph-eval-"))

    def save(self, i: int, acts: Activations) -> None:
        for l, x in acts.residuals.items():
            torch.save(x.detach().float().clone(), self.dir / f"{i}-{l}.pt")
        if acts.rotary is not None:
            torch.save((acts.rotary[0].float().clone(), acts.rotary[1].float().clone()), self.dir / f"{i}-rot.pt")

    def load(self, i: int, wb: WordBatch, layers: Iterable[int]) -> Activations:
        acts = Activations(input_ids=wb.ids, attention_mask=wb.mask)
        for l in layers:
            acts.residuals[l] = torch.load(self.dir / f"{i}-{l}.pt")
        rot = self.dir / f"{i}-rot.pt"
        if rot.exists():
            acts.rotary = torch.load(rot)
        return acts

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
