"""Keeping Python's cyclic garbage collector off work that cannot be garbage.

``paused_cyclic_gc``: pausing the collector around bulk work that allocates millions of containers.

Building the store's statement rows allocates a list per row and several per property (hundreds of
thousands of lists for a 100k-relation load). Every 700 container allocations start a young
collection, and as they survive the collector's full collections walk every tracked object again:
measured on the bench's synthetic corpus, the row building took 5.8 s with the collector on and
1.8 s with it off (docs/neo4j.md). Reference counting still frees everything that is not part of a
reference cycle while the collector is paused; cycles made meanwhile are collected after it resumes.

The pause is process-wide (``gc.disable`` is), so it is counted: nested and concurrent pauses (the
store's concurrent writers run in threads) resume the collector only when the last one ends, and only
if it was enabled when the first one began.

``frozen_heap``: a long stream (``analyze_documents``) runs with every object that was alive when it
began moved to the collector's permanent generation (``gc.freeze``). Those are mostly the loaded
models: about 500,000 tracked objects for all-MiniLM-L6-v2 with spaCy, which each full collection
walked again, 0.25 s a time, once or twice per 318 EWT documents (docs/ingest.md). The stream's own
objects are collected as usual; the frozen ones go back to the oldest generation when the stream ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["frozen_heap", "paused_cyclic_gc"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False
_frozen_depth = 0
_froze = False


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


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the objects alive now (``gc.freeze``) for the ``with`` block, unfreeze them after.

    Counted like ``paused_cyclic_gc``: nested and concurrent blocks unfreeze when the last one ends.
    A process that already froze objects itself (``gc.get_freeze_count() > 0`` at the first entry)
    is left as it is: nothing is frozen here and nothing unfrozen after."""
    global _frozen_depth, _froze
    with _lock:
        if _frozen_depth == 0:
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
        _frozen_depth += 1
    try:
        yield
    finally:
        with _lock:
            _frozen_depth -= 1
            if _frozen_depth == 0 and _froze:
                gc.unfreeze()
                _froze = False
