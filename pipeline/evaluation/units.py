"""Word-level units of the dependency evaluation (Clark et al. 2019's protocol) and their logits.

A *unit* maps every word of a sentence to one other word of it (its predicted partner): a fixed offset,
a raw attention head, a head's full logits, a rank-k truncation of a head's QK circuit, one rank-1
component, or a set of components assembled across the heads of a layer. This module names units
and computes their subword-level logits and attention shares from a layer's residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.corpus import Corpus
from pipeline.model.units import (
    HeadFactors,
    assembled_id,
    assembled_logits,
    component_logits,
    head_coordinates,
    model_mask,
    parse_assembled_id,
    prefix_logits,
    share,
)

OFFSETS = (-3, -2, -1, 1, 2, 3)


@dataclass(frozen=True)
class Unit:
    """One word-level predictor. method: offset | attention | logit | rank_k | component | assembled."""

    method: str
    id: str
    layer: int | None = None
    head: int | None = None
    k: int | None = None
    offset: int | None = None
    components: tuple[tuple[int, int], ...] = ()  # (head, component) pairs of ``assembled``

    @property
    def at_layer(self) -> int:
        """The layer of a unit that has one (every method but ``offset``)."""
        if self.layer is None:
            raise ValueError(f"unit {self.id} has no layer")
        return self.layer


def offset_predictions(corpus: Corpus, offset: int, causal: bool) -> np.ndarray:
    """Local partner index u + offset for every word (-1 when outside the sentence, unaligned, or
    not visible to a decoder)."""
    out = np.full(corpus.n_words, -1, dtype=np.int64)
    for k, s in enumerate(corpus.sentences):
        off = corpus.word_offset[k]
        for u in range(s.n_words):
            v = u + offset
            if 0 <= v < s.n_words and s.members[u] and s.members[v] and (not causal or v < u):
                out[off + u] = v
    return out


__all__ = [
    "OFFSETS",
    "HeadFactors",
    "Unit",
    "assembled_id",
    "assembled_logits",
    "component_logits",
    "head_coordinates",
    "model_mask",
    "offset_predictions",
    "parse_assembled_id",
    "prefix_logits",
    "share",
]
