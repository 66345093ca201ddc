"""Pausing Python's cyclic garbage collector around bulk work that allocates millions of containers.

Building the store's statement rows allocates a list per row and several per property (hundreds of
thousands of lists for a 100k-relation load). Every 700 container allocations start a young
collection, and as they survive the collector's full collections walk every tracked object again:
measured on the bench's synthetic corpus, the row building took 5.8 s with the collector on and
1.8 s with it off (docs/neo4j.md). Reference counting still frees everything that is not part of a
reference cycle while the collector is paused; cycles made meanwhile are collected after it resumes.

The pause is process-wide (``gc.disable`` is), so it is counted: nested and concurrent pauses (the
store's concurrent writers run in threads) resume the collector only when the last one ends, and only
if it was enabled when the first one began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_cyclic_gc"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block (reference counting keeps working)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
