"""Which subwords belong to which span.

Alignment. Spans and the model's subwords meet through character offsets: a subword belongs to a span
when their character ranges overlap. This is many-to-many (BERT's "don" covers spaCy's "do" and part of
"n't"), robust to the uncased tokenizer stripping accents (its offsets still point into the original
text), and whitespace has no subwords at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.types import Span


def membership(spans: Sequence[Span], offsets: torch.Tensor, window_start: int) -> torch.Tensor:
    """[n_spans, T] boolean: subword t overlaps span s (offsets are [T, 2] relative to the window)."""
    starts = offsets[:, 0] + window_start
    ends = offsets[:, 1] + window_start
    real = offsets[:, 1] > offsets[:, 0]  # special tokens and padding have empty offsets
    s0 = torch.tensor([s.start_char for s in spans], dtype=torch.long)[:, None]
    s1 = torch.tensor([s.end_char for s in spans], dtype=torch.long)[:, None]
    return (starts[None] < s1) & (ends[None] > s0) & real[None]


def align_subwords(text: str, offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """members[u] = subword positions whose (whitespace-trimmed) span overlaps surface word u."""
    members: list[list[int]] = [[] for _ in spans]
    starts = [s for s, _ in spans]
    for pos, (a, b) in enumerate(offsets):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a >= b:
            continue  # special token or pure whitespace
        # surface words are sorted by start; scan the few that can overlap
        lo = max(0, int(np.searchsorted(starts, a, side="right")) - 1)
        for u in range(lo, len(spans)):
            s, e = spans[u]
            if s >= b:
                break
            if max(a, s) < min(b, e):
                members[u].append(pos)
    return members
