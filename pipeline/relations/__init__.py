"""Stage 4, relations: sentence windows, span-subword alignment, pooling, typed span relations."""

from __future__ import annotations

from pipeline.relations.alignment import membership
from pipeline.relations.extract import RelationExtractor, RelationStats
from pipeline.relations.pooling import pool_span_scores
from pipeline.relations.windows import Window, make_windows

__all__ = ["RelationExtractor", "RelationStats", "Window", "make_windows", "membership", "pool_span_scores"]
