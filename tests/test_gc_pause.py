"""pipeline.gc_pause: the collector is paused inside, and resumed exactly when the last pause ends;
frozen objects are unfrozen exactly when the last freeze ends."""

from __future__ import annotations

import gc
import threading

import pytest

from pipeline.gc_pause import frozen_heap, paused_cyclic_gc


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_resumed_after_also_when_the_block_raises() -> None:
    gc.enable()
    with paused_cyclic_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_cyclic_gc():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_nested_pauses_resume_only_at_the_outermost_end() -> None:
    gc.enable()
    with paused_cyclic_gc():
        with paused_cyclic_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with paused_cyclic_gc():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_in_threads_resume_when_the_last_one_ends() -> None:
    """Thread A pauses, B pauses, A ends (B still running: still paused), B ends: resumed. A plain
    disable/enable pair per thread would either resume under B or leave the collector off for good."""
    gc.enable()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def a() -> None:
        with paused_cyclic_gc():
            a_in.set()
            b_in.wait()
        a_out.set()

    def b() -> None:
        a_in.wait()
        with paused_cyclic_gc():
            b_in.set()
            a_out.wait()
            seen["while B runs after A ended"] = gc.isenabled()

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"while B runs after A ended": False}
    assert gc.isenabled()


def test_cycles_made_while_paused_are_collected_after() -> None:
    gc.enable()
    gc.collect()

    class Node:
        pass

    with paused_cyclic_gc():
        for _ in range(1000):
            x = Node()
            x.self = x  # type: ignore[attr-defined]
        del x
        assert any(isinstance(o, Node) for o in gc.get_objects())
    gc.collect()
    assert not any(isinstance(o, Node) for o in gc.get_objects())


def test_frozen_inside_unfrozen_after_also_when_the_block_raises_and_when_nested() -> None:
    assert gc.get_freeze_count() == 0
    alive = [object() for _ in range(10)]
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with frozen_heap():  # nested: nothing more frozen, nothing unfrozen at its end
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
    del alive


def test_objects_made_inside_are_collected_as_usual_and_frozen_ones_after() -> None:
    class Node:
        pass

    def cycle() -> None:
        x = Node()
        x.self = x  # type: ignore[attr-defined]

    gc.collect()
    cycle()  # garbage from before the block: frozen with the rest, so it survives a collection
    with frozen_heap():
        gc.collect()
        assert sum(isinstance(o, Node) for o in gc.get_objects()) == 0  # frozen objects are not listed
        cycle()
        assert sum(isinstance(o, Node) for o in gc.get_objects()) == 1
        gc.collect()
        assert sum(isinstance(o, Node) for o in gc.get_objects()) == 0
    assert sum(isinstance(o, Node) for o in gc.get_objects()) == 1  # the old one, back in the heap
    gc.collect()
    assert sum(isinstance(o, Node) for o in gc.get_objects()) == 0


def test_a_process_that_froze_objects_itself_is_left_as_it_is() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with frozen_heap():
            assert gc.get_freeze_count() == before
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()
