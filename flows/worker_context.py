"""Prefect's per-task context on Dask workers, built once per worker process instead of once per task.

Every task run that prefect-dask sends to a worker carries the flow's serialized context, and
Prefect's ``hydrated_context`` rebuilds it on the worker for each task: a full ``Settings`` model
from a dict (pydantic-settings reads every settings source again) and two new API clients, each
with a fresh SSL context (``load_verify_locations`` alone is ~30 ms). Profiled on this machine
(``run_task_sync`` of a no-op task on a replayed flow context), that is most of the ~80 ms of CPU a
task costs a worker, the same whether the task is a no-op or a batch of documents.

``reusing_hydrated_context`` sets up the same contexts in the same order, but keeps what depends only
on the settings, per worker process, keyed by the serialized settings themselves:

* the ``SettingsContext`` (each task enters its own shallow copy, so concurrent tasks in one
  worker's threads never share a context token);
* one entered ``SyncPrefectClient`` per settings (httpx clients are safe to share between threads),
  published to the task engine through a ``SyncClientContext`` bound to it, so the engine's
  ``SyncClientContext.get_or_create()`` finds it instead of opening another client;
* the pydantic model rebuild Prefect does first, done once.

Everything else (flow run, task run, tags, assets, deployment context variables) is hydrated per task
exactly as Prefect does. A serialized context with a key this module does not know (a newer Prefect)
goes to Prefect's own ``hydrated_context`` unchanged, and so does every task when the installed
Prefect is not the version this was written against (``SUPPORTED_PREFECT``).

``PrefectContextReuse`` is the Dask worker plugin that installs it on every worker, present and
future (``prepare_workers(client)``, called by the flow when it runs on Dask).

The flow process has the mirror cost: prefect-dask serializes the whole context for every task it
submits, and the settings part (a ``model_dump`` of every setting, then a walk over the result) is
~15 ms of CPU per task on an idle core, taken from the workers when they share the machine.
``install_flow_side()`` (also called by ``prepare_task_runner``) keeps the serialized settings per
``SettingsContext`` object: Prefect makes a new context whenever settings change
(``temporary_settings``, a profile), so a cached entry is used only for the same context object
holding the same ``Settings`` object, and each call gets its own deep copy.

Set ``QKGRAPH_PREFECT_REUSE=off`` to keep Prefect's behaviour on both sides.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Generator
from contextlib import ExitStack, contextmanager
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

log = logging.getLogger("qkgraph.flows")

#: Prefect versions whose ``prefect.context.hydrated_context`` this module mirrors.
SUPPORTED_PREFECT = ("3.9.1",)
#: Keys of ``prefect.context.serialize_context()`` handled here (any other key: Prefect's own path).
KNOWN_KEYS = frozenset(
    {
        "flow_run_context",
        "task_run_context",
        "tags_context",
        "settings_context",
        "asset_context",
        "deployment_id",
        "deployment_parameters",
    }
)
REUSE_ENV = "QKGRAPH_PREFECT_REUSE"
PLUGIN_NAME = "qkgraph-prefect-context-reuse"

_lock = threading.Lock()
_settings: dict[str, Any] = {}  # settings key -> SettingsContext (never entered itself)
_clients: dict[str, Any] = {}  # settings key -> entered SyncPrefectClient
_rebuilt = False
_original: Any = None  # prefect.task_engine.hydrated_context before install()


def reuse_enabled() -> bool:
    """False when QKGRAPH_PREFECT_REUSE is off/0/false/no (then Prefect's behaviour is kept)."""
    return os.environ.get(REUSE_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def supported() -> bool:
    """Whether the installed Prefect is one this module mirrors."""
    import prefect

    return prefect.__version__ in SUPPORTED_PREFECT


def _rebuild_models_once() -> None:
    # Prefect rebuilds these two models on every hydration (their forward references may be
    # unresolved in a fresh worker process); once per process is enough.
    global _rebuilt
    if _rebuilt:
        return
    from prefect._internal.result_records import ResultRecordMetadata
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.flows import Flow
    from prefect.tasks import Task

    types = {"Flow": Flow, "Task": Task, "ResultRecordMetadata": ResultRecordMetadata}
    FlowRunContext.model_rebuild(_types_namespace=types)
    TaskRunContext.model_rebuild(_types_namespace=types)
    _rebuilt = True


def _settings_key(settings_context: dict[str, Any]) -> str:
    return json.dumps(settings_context, sort_keys=True, default=repr)


def _cached_settings(key: str, settings_context: dict[str, Any]) -> Any:
    from prefect.context import SettingsContext

    with _lock:
        ctx = _settings.get(key)
        if ctx is None:
            ctx = _settings[key] = SettingsContext(**settings_context)
    return ctx


def _cached_client(key: str) -> Any:
    """The worker's API client for the settings now in effect (created and entered on first use)."""
    from prefect.client.orchestration import get_client
    from prefect.context import SettingsContext

    with _lock:
        client = _clients.get(key)
        if client is None:
            client = get_client(sync_client=True)
            client.__enter__()
            settings = SettingsContext.get()
            if settings is None or settings.settings.client.server_version_check_enabled:
                client.raise_for_api_version_mismatch_once()
            _clients[key] = client
    return client


@contextmanager
def _bound(ctx: Any) -> Generator[Any, None, None]:
    """Make ctx the current context of its kind (its context variable) without entering it."""
    token = type(ctx).__var__.set(ctx)
    try:
        yield ctx
    finally:
        type(ctx).__var__.reset(token)


@contextmanager
def reusing_hydrated_context(
    serialized_context: dict[str, Any] | None = None, client: Any = None
) -> Generator[None, Any, None]:
    """``prefect.context.hydrated_context`` with the settings and the API client kept per process.

    Same arguments and the same contexts entered, in the same order; see the module docstring.
    """
    if not serialized_context or not serialized_context.keys() <= KNOWN_KEYS or _original is None:
        with (_original or _prefect_hydrated_context())(serialized_context, client):
            yield
        return
    from prefect.context import (
        AssetContext,
        FlowRunContext,
        SyncClientContext,
        TaskRunContext,
        _deployment_id,
        _deployment_parameters,
        tags,
    )
    from prefect.logging.configuration import ensure_logging_setup

    _rebuild_models_once()
    with ExitStack() as stack:
        ensure_logging_setup()
        key = ""
        if settings_context := serialized_context.get("settings_context"):
            key = _settings_key(settings_context)
            stack.enter_context(_cached_settings(key, settings_context).model_copy())
        client = client or _cached_client(key)
        stack.enter_context(_bound(SyncClientContext.model_construct(client=client)))
        if flow_run_context := serialized_context.get("flow_run_context"):
            flow = flow_run_context["flow"]
            task_runner = stack.enter_context(flow.task_runner.duplicate())
            stack.enter_context(
                FlowRunContext(**flow_run_context, client=client, task_runner=task_runner, detached=True)
            )
        if parent_task_run_context := serialized_context.get("task_run_context"):
            stack.enter_context(TaskRunContext(**parent_task_run_context, client=client))
        if tags_context := serialized_context.get("tags_context"):
            stack.enter_context(tags(*tags_context["current_tags"]))
        if asset_context := serialized_context.get("asset_context"):
            stack.enter_context(AssetContext(**asset_context))
        if deployment_id := serialized_context.get("deployment_id"):
            from uuid import UUID

            stack.callback(_deployment_id.reset, _deployment_id.set(UUID(deployment_id)))
        if deployment_params := serialized_context.get("deployment_parameters"):
            stack.callback(_deployment_parameters.reset, _deployment_parameters.set(deployment_params))
        yield


def _prefect_hydrated_context() -> Any:
    from prefect.context import hydrated_context

    return hydrated_context


def _patch(owner: Any, name: str, replacement: Any) -> Any:
    """Set ``owner.name`` to replacement unless it already is; the value it replaced, else None."""
    current = getattr(owner, name)
    if current is replacement:
        return None
    setattr(owner, name, replacement)
    return current


def _restore(owner: Any, name: str, replacement: Any, original: Any) -> None:
    """Put ``original`` back at ``owner.name`` if ``replacement`` is still there."""
    if original is not None and getattr(owner, name) is replacement:
        setattr(owner, name, original)


def install() -> bool:
    """Put ``reusing_hydrated_context`` in Prefect's task engine in this process (idempotent).

    Returns False, changing nothing, when reuse is switched off or this Prefect is not supported.
    """
    global _original
    if not reuse_enabled() or not supported():
        return False
    import prefect.task_engine as engine

    with _lock:
        _original = _patch(engine, "hydrated_context", reusing_hydrated_context) or _original
    return True


def uninstall() -> None:
    """Restore Prefect's ``hydrated_context`` and close the clients kept in this process."""
    global _original
    import prefect.task_engine as engine

    with _lock:
        _restore(engine, "hydrated_context", reusing_hydrated_context, _original)
        _original = None
        clients = list(_clients.values())
        _clients.clear()
        _settings.clear()
    for client in clients:
        try:
            client.__exit__(None, None, None)
        except Exception as exc:  # noqa: BLE001 - closing a client must not fail a worker's shutdown
            log.debug("closing a Prefect client: %s", exc)


_serialized: dict[bool, tuple[Any, Any, dict[str, Any]]] = {}  # include_secrets -> (context, settings, dict)
_original_serialize: Any = None  # prefect.context.SettingsContext.serialize before install_flow_side()


def _serialize_settings_once(self: Any, include_secrets: bool = True) -> dict[str, Any]:
    """``SettingsContext.serialize``, computed once per context object and its settings object."""
    hit = _serialized.get(include_secrets)
    if hit is None or hit[0] is not self or hit[1] is not self.settings:
        # The entry holds the context and settings objects, so their ids cannot be reused meanwhile.
        hit = (self, self.settings, _original_serialize(self, include_secrets=include_secrets))
        _serialized[include_secrets] = hit
    return copy.deepcopy(hit[2])


def install_flow_side() -> bool:
    """Keep the serialized settings in this (the flow's) process, see the module docstring; idempotent.

    Returns False, changing nothing, when reuse is switched off or this Prefect is not supported.
    """
    global _original_serialize
    if not reuse_enabled() or not supported():
        return False
    from prefect.context import SettingsContext

    with _lock:
        _original_serialize = _patch(SettingsContext, "serialize", _serialize_settings_once) or _original_serialize
    return True


def uninstall_flow_side() -> None:
    """Restore Prefect's ``SettingsContext.serialize`` and drop what was kept."""
    global _original_serialize
    from prefect.context import SettingsContext

    with _lock:
        _restore(SettingsContext, "serialize", _serialize_settings_once, _original_serialize)
        _original_serialize = None
        _serialized.clear()


class PrefectContextReuse(WorkerPlugin):
    """Dask worker plugin: ``install()`` on each worker at its start, ``uninstall()`` at teardown."""

    name = PLUGIN_NAME

    def setup(self, worker: Any) -> None:
        self.installed = install()

    def teardown(self, worker: Any) -> None:
        uninstall()


def prepare_workers(dask_client: Any) -> bool:
    """Register ``PrefectContextReuse`` on the cluster of dask_client (every present and future
    worker; registering again replaces it). Returns whether it was registered; a failure is logged
    and the flow goes on with Prefect's own per-task context."""
    if not reuse_enabled():
        return False
    try:
        dask_client.register_plugin(PrefectContextReuse(), name=PLUGIN_NAME)
    except Exception as exc:  # noqa: BLE001 - an optimisation: never worth failing the flow over
        log.warning("could not register %s on the Dask workers (%s); tasks use Prefect's context", PLUGIN_NAME, exc)
        return False
    return True


def prepare_task_runner(task_runner: Any) -> bool:
    """``install_flow_side()`` here and ``prepare_workers`` on the Dask client of a flow's task runner
    (prefect-dask's ``DaskTaskRunner.client``); False for a runner without one (threads: nothing to
    prepare, nothing changed)."""
    dask_client = getattr(task_runner, "client", None)
    if dask_client is None or not hasattr(dask_client, "register_plugin"):
        return False
    if not install_flow_side():
        uninstall_flow_side()  # switched off since an earlier flow of this process installed it
    return prepare_workers(dask_client)
