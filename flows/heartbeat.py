"""The end of a flow run without waiting for Prefect's heartbeat thread to wake up.

Prefect (3.9) sends flow-run heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, default 180 s) from
a daemon thread that sleeps in one-second steps, and the sync flow engine joins that thread when the
run ends (``prefect.flow_engine._send_heartbeats``, ``join_on_exit=True``). The join waits until the
thread's current second is over: every flow run ended 0-1 s late (about 0.5 s on average), measured
on this machine as the gap between the flow function's last line and the task runner's exit, and
seen as one-second steps in the Dask bench's wall times (bench/flow_overhead.py).

``install()`` makes the sync engine use the same context manager with ``join_on_exit=False``, as
Prefect's own async engine does. The heartbeats themselves are unchanged: the thread starts with the
run, sends every heartbeat it would, and stops on the stop event at its next step without sending
another (it checks the event before each heartbeat). Crash detection of scheduled runs is kept.

Set ``QKGRAPH_PREFECT_REUSE=off`` to keep Prefect's behaviour (as for flows/worker_context.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from flows.worker_context import reuse_enabled, supported

_original: Callable[..., AbstractContextManager[None]] | None = None


def _send_heartbeats_unjoined(engine: Any, join_on_exit: bool = False) -> AbstractContextManager[None]:
    """Prefect's heartbeat context manager for ``engine``, not joining its thread on exit."""
    assert _original is not None
    return _original(engine, join_on_exit=False)


def install() -> bool:
    """Put ``_send_heartbeats_unjoined`` in Prefect's flow engine in this process (idempotent).

    Returns False, changing nothing, when switched off (``QKGRAPH_PREFECT_REUSE=off``), when this
    Prefect is not a supported version, or when its ``_send_heartbeats`` has no ``join_on_exit``.
    """
    global _original
    if not reuse_enabled() or not supported():
        return False
    import prefect.flow_engine as engine

    current = getattr(engine, "_send_heartbeats", None)
    if current is _send_heartbeats_unjoined:
        return True
    if current is None or "join_on_exit" not in inspect.signature(current).parameters:
        return False
    _original = current
    engine._send_heartbeats = _send_heartbeats_unjoined  # type: ignore[assignment]  # same call shape
    return True


def uninstall() -> None:
    """Restore Prefect's own ``_send_heartbeats``."""
    import prefect.flow_engine as engine

    if _original is not None and getattr(engine, "_send_heartbeats", None) is _send_heartbeats_unjoined:
        engine._send_heartbeats = _original  # type: ignore[assignment]
