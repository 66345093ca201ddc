"""flows.worker_context: Prefect's per-task context on Dask workers, kept per process.

A flow's context is serialized inside a real flow run on the test server and replayed here, as a Dask
worker receives it; the task engine then runs real tasks under it.
"""

from __future__ import annotations

import time
from typing import Any

import cloudpickle
import pytest
from prefect import flow, tags, task
from prefect.context import FlowRunContext, SettingsContext, SyncClientContext, TagsContext, serialize_context

from flows import worker_context
from flows.worker_context import KNOWN_KEYS, reusing_hydrated_context


@task
def double(i: int) -> int:
    return 2 * i


def _flow_context() -> tuple[bytes, Any]:
    """A serialized context captured inside a real flow run (tags on), and that run's id."""
    captured: dict[str, Any] = {}

    @flow(name="qkgraph-context-probe")
    def probe() -> None:
        with tags("nightly"):
            captured["ctx"] = cloudpickle.dumps(serialize_context())
            captured["id"] = FlowRunContext.get().flow_run.id  # type: ignore[union-attr]

    probe()
    return captured["ctx"], captured["id"]


@pytest.fixture
def installed(prefect_harness, monkeypatch):
    monkeypatch.delenv(worker_context.REUSE_ENV, raising=False)
    assert worker_context.install()
    yield
    worker_context.uninstall()


def test_the_known_keys_are_what_prefect_serializes(prefect_harness):
    # A Prefect that serializes more would send those tasks down Prefect's own path: caught here.
    ctx = cloudpickle.loads(_flow_context()[0])
    assert set(ctx) == KNOWN_KEYS


def test_replayed_context_matches_prefects_and_the_client_is_kept(installed):
    from prefect.context import hydrated_context

    raw, run_id = _flow_context()
    seen = []
    for hydrate in (hydrated_context, reusing_hydrated_context, reusing_hydrated_context):
        with hydrate(cloudpickle.loads(raw)):
            run = FlowRunContext.get()
            settings = SettingsContext.get()
            seen.append(
                {
                    "flow_run": run.flow_run.id,  # type: ignore[union-attr]
                    "flow": run.flow.name,  # type: ignore[union-attr]
                    "api": settings.settings.api.url,  # type: ignore[union-attr]
                    "tags": sorted(TagsContext.get().current_tags),
                    "client": id(run.client),  # type: ignore[union-attr]
                    "bound": SyncClientContext.get(),
                }
            )
    prefects, first, second = seen
    assert first["flow_run"] == second["flow_run"] == prefects["flow_run"] == run_id
    assert first["flow"] == prefects["flow"] == "qkgraph-context-probe"
    assert first["api"] == prefects["api"] and first["api"]
    assert first["tags"] == prefects["tags"] == ["nightly"]
    # One API client per worker process for these settings, and the engine finds it bound.
    assert first["client"] == second["client"] != prefects["client"]
    assert prefects["bound"] is None and first["bound"].client is second["bound"].client
    # Nothing leaks out of the context.
    assert FlowRunContext.get() is None and SyncClientContext.get() is None


def test_tasks_run_under_the_kept_context_report_to_the_api(installed):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.events.worker import EventsWorker
    from prefect.task_engine import run_task_sync

    raw, run_id = _flow_context()
    t0 = time.process_time()
    states = [
        run_task_sync(double, parameters={"i": i}, context=cloudpickle.loads(raw), return_type="state")
        for i in range(6)
    ]
    cpu = time.process_time() - t0
    assert [s.result() for s in states] == [0, 2, 4, 6, 8, 10]
    # Task runs reach the API as events, recorded by the server after the fact: flush, then poll.
    EventsWorker.drain_all()
    doubles: list[Any] = []
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            doubles = [r for r in runs if r.name.startswith("double") and r.state_type.value == "COMPLETED"]
            if len(doubles) == 6:
                break
            time.sleep(0.5)
    assert len(doubles) == 6
    assert {r.tags[0] for r in doubles if r.tags} <= {"nightly"}
    print(f"CPU per task with the kept context: {1000 * cpu / 6:.1f} ms")


def test_an_unknown_key_goes_down_prefects_own_path(installed):
    raw, run_id = _flow_context()
    ctx = cloudpickle.loads(raw)
    ctx["something_newer"] = {"x": 1}
    with reusing_hydrated_context(ctx):
        assert FlowRunContext.get().flow_run.id == run_id  # type: ignore[union-attr]
        assert SyncClientContext.get() is None  # Prefect's hydration binds no client context


def test_switched_off_changes_nothing(prefect_harness, monkeypatch):
    import prefect.task_engine as engine

    before = engine.hydrated_context
    monkeypatch.setenv(worker_context.REUSE_ENV, "off")
    assert not worker_context.install()
    assert engine.hydrated_context is before
    assert not worker_context.prepare_workers(object())  # not even touched
    monkeypatch.setenv(worker_context.REUSE_ENV, "on")

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        pass
    # A cluster that is gone: logged, the flow goes on (False, no exception).
    assert not worker_context.prepare_workers(client)


def test_the_flow_side_keeps_the_serialized_settings_per_context_object(prefect_harness, monkeypatch):
    """install_flow_side: the same dict as Prefect's serialize, computed once per SettingsContext
    object and settings object (each call a fresh copy), a new context (temporary_settings) serialized
    anew; uninstall restores Prefect's method."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv(worker_context.REUSE_ENV, raising=False)
    original = SettingsContext.serialize
    ctx = SettingsContext.get()
    expected = original(ctx)
    calls: list[Any] = []
    monkeypatch.setattr(
        SettingsContext,
        "serialize",
        lambda self, include_secrets=True: calls.append(self) or original(self, include_secrets),
    )
    counted = SettingsContext.serialize
    try:
        assert worker_context.install_flow_side()
        assert worker_context.install_flow_side()  # idempotent
        first, second = ctx.serialize(), ctx.serialize()
        assert first == second == expected
        assert first is not second
        first["settings"] = "changed by a caller"
        assert ctx.serialize() == expected  # the kept entry is not the caller's copy
        assert calls == [ctx]  # computed once for this context object
        with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
            other = SettingsContext.get()
            assert other is not ctx
            assert other.serialize()["settings"]["api"]["url"] == "http://127.0.0.1:9/api"
        assert calls == [ctx, other]
        assert ctx.serialize() == expected
        assert serialize_context()["settings_context"] == expected
    finally:
        worker_context.uninstall_flow_side()
    assert SettingsContext.serialize is counted


def test_the_flow_side_switched_off_changes_nothing_and_a_later_flow_undoes_it(prefect_harness, monkeypatch):
    from types import SimpleNamespace

    from distributed import Client, LocalCluster

    monkeypatch.setenv(worker_context.REUSE_ENV, "off")
    original = SettingsContext.serialize
    assert not worker_context.install_flow_side()
    assert SettingsContext.serialize is original
    # Installed by an earlier flow of this process, then switched off: the next flow restores Prefect's.
    monkeypatch.setenv(worker_context.REUSE_ENV, "on")
    assert worker_context.install_flow_side()
    assert SettingsContext.serialize is not original
    monkeypatch.setenv(worker_context.REUSE_ENV, "off")
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        assert not worker_context.prepare_task_runner(SimpleNamespace(client=client))  # a DaskTaskRunner's attribute
    assert SettingsContext.serialize is original
