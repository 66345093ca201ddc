"""Stage 4, relations: sentence windows, span-subword alignment, pooling, typed span relations."""

from __future__ import annotations

from pipeline.relations.extract import (
    RelationExtractor,
    RelationStats,
    Window,
    make_windows,
    membership,
    pool_span_scores,
)

__all__ = ["RelationExtractor", "RelationStats", "Window", "make_windows", "membership", "pool_span_scores"]
