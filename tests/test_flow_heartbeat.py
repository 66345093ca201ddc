"""flows/heartbeat.py: a flow run sends its heartbeats and ends without joining the heartbeat thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest


def _heartbeat_threads() -> list[threading.Thread]:
    """Prefect's flow-run heartbeat threads: Thread(target=copied_context.run, args=(heartbeat_loop,))."""
    out = []
    for t in threading.enumerate():
        args = getattr(t, "_args", ())
        if args and getattr(args[0], "__name__", "") == "heartbeat_loop":
            out.append(t)
    return out


def _run_tiny_flow(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Thread, list[str], list[int]]:
    """Run a one-line flow; (its heartbeat thread, the joins of that thread, heartbeats sent per phase)."""
    import prefect.flow_engine as engine
    from prefect import flow

    sent = [0]
    original_emit = engine.BaseFlowRunEngine._emit_flow_run_heartbeat

    def counting_emit(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return original_emit(self, *args, **kwargs)

    monkeypatch.setattr(engine.BaseFlowRunEngine, "_emit_flow_run_heartbeat", counting_emit)
    before = set(_heartbeat_threads())
    found: list[threading.Thread] = []
    joins: list[str] = []

    @flow(name="heartbeat-probe")
    def tiny() -> int:
        new = [t for t in _heartbeat_threads() if t not in before]
        assert len(new) == 1, new
        thread = new[0]
        plain_join = thread.join

        def recording_join(timeout: float | None = None) -> None:
            joins.append("joined")
            plain_join(timeout)

        thread.join = recording_join  # type: ignore[method-assign]
        found.append(thread)
        for _ in range(3000):  # the thread sends its first heartbeat as it starts; let it
            if sent[0]:
                break
            time.sleep(0.01)
        return 1

    assert tiny() == 1
    return found[0], joins, sent


def test_the_flow_run_sends_its_heartbeat_and_does_not_wait_for_the_thread(prefect_harness, monkeypatch):
    import prefect.flow_engine as engine

    import flows.ingest  # noqa: F401 - importing the flows installs it
    from flows import heartbeat

    assert engine._send_heartbeats is heartbeat._send_heartbeats_unjoined
    thread, joins, sent = _run_tiny_flow(monkeypatch)
    assert joins == []  # the run ended without joining the heartbeat thread
    assert sent[0] >= 1  # the first heartbeat went out when the run started
    at_end = sent[0]
    thread.join(30)  # no timeout inside the product: it stops at its next one-second step
    assert not thread.is_alive()
    assert sent[0] == at_end  # nothing sent after the run ended


def test_with_prefects_own_heartbeat_context_the_thread_is_joined(prefect_harness, monkeypatch):
    import prefect.flow_engine as engine

    from flows import heartbeat

    heartbeat.install()
    heartbeat.uninstall()
    try:
        assert engine._send_heartbeats is not heartbeat._send_heartbeats_unjoined
        thread, joins, sent = _run_tiny_flow(monkeypatch)
        assert joins == ["joined"] and sent[0] >= 1 and not thread.is_alive()
    finally:
        assert heartbeat.install()


def test_switched_off_it_changes_nothing(monkeypatch):
    import prefect.flow_engine as engine

    from flows import heartbeat

    heartbeat.install()
    heartbeat.uninstall()
    monkeypatch.setenv("QKGRAPH_PREFECT_REUSE", "off")
    try:
        assert heartbeat.install() is False
        assert engine._send_heartbeats is not heartbeat._send_heartbeats_unjoined
    finally:
        monkeypatch.delenv("QKGRAPH_PREFECT_REUSE")
        assert heartbeat.install()
