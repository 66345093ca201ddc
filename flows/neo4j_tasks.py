"""Neo4j in the flows (named so, not neo4j.py: Prefect runs entrypoint scripts with flows/ on sys.path, where
a neo4j.py would shadow the driver): settings resolved per attempt, retries on transient errors only, one driver per process.

Tasks that talk to Neo4j retry with exponential backoff and jitter, but only on transient failures
(``is_transient``); bad credentials or a bad analysis fail at once. Settings (and the password) are
resolved inside the task, on every attempt, from the environment or a Prefect Secret block; the
password is never a flow parameter.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import neo4j
from prefect import task
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import quote

from flows.options import TASK_OPTIONS
from pipeline import store
from pipeline.errors import Neo4jConnectionError
from pipeline.store.settings import Neo4jSettings
from pipeline.types import Document, DocumentAnalysis, FailedDocument, WriteResult

NEO4J_RETRIES = 3
NEO4J_RETRY_DELAY_S = 5.0


@dataclass(frozen=True)
class Neo4jTarget:
    """Where to upsert, without the password: it is resolved inside the task, on every attempt.

    ``password_secret`` names a Prefect Secret block holding the password; without it the password
    comes from NEO4J_PASSWORD in the environment of the process that runs the task. The other fields
    fall back to NEO4J_URI / NEO4J_USER / NEO4J_DATABASE, also read per attempt.
    """

    uri: str | None = None
    user: str | None = None
    database: str | None = None
    password_secret: str | None = None

    def configured(self) -> bool:
        return bool(self.uri or os.environ.get("NEO4J_URI"))

    def resolve(self) -> Neo4jSettings:
        password = None
        if self.password_secret:
            from prefect.blocks.system import Secret

            secret = Secret.load(self.password_secret)
            assert isinstance(secret, Secret), "Secret.load is sync in a sync task"
            password = secret.get()
        settings = Neo4jSettings.from_env(self.uri, self.user, password, self.database)
        if settings is None:
            raise Neo4jConnectionError("no Neo4j URI: pass neo4j_uri or set NEO4J_URI")
        return settings


def is_transient(exc: BaseException) -> bool:
    """Worth a retry: Neo4j unreachable or restarting, a lost session, a deadlock or other transient error.

    ``Neo4jConnectionError`` covers unreachable servers, wrong credentials and unknown databases;
    only the first is transient (its message starts "cannot reach", see pipeline.store.connect).
    """
    from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

    if isinstance(exc, ServiceUnavailable | SessionExpired | TransientError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, Neo4jConnectionError):
        return str(exc).startswith("cannot reach")
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: retry only what ``is_transient`` accepts."""
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - classify whatever the task raised
        return is_transient(exc)
    return False


def neo4j_retry_options(retries: int = NEO4J_RETRIES, delay_s: float = NEO4J_RETRY_DELAY_S) -> dict[str, Any]:
    """Exponential backoff (delay_s, 2*delay_s, 4*delay_s, ...) with 50% jitter, transient errors only."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=delay_s)(retries) if retries else 0,
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": retry_if_transient,
    }


class DriverPool:
    """One driver per settings in this process, dropped after an error so the next attempt reconnects."""

    def __init__(self) -> None:
        self._drivers: dict[Neo4jSettings, neo4j.Driver] = {}
        self._lock = threading.Lock()

    def get(self, settings: Neo4jSettings) -> neo4j.Driver:
        with self._lock:
            driver = self._drivers.get(settings)
            if driver is None:
                driver = self._drivers[settings] = store.connect(settings)
            return driver

    def drop(self, settings: Neo4jSettings) -> None:
        with self._lock:
            driver = self._drivers.pop(settings, None)
        if driver is not None:
            try:
                driver.close()
            except Exception:  # noqa: BLE001 - closing a broken driver must not mask the error being handled
                pass

    def close(self) -> None:
        for settings in list(self._drivers):
            self.drop(settings)


DRIVERS = DriverPool()


def close_drivers() -> None:
    """Close this process's Neo4j drivers (the flow calls it when it ends)."""
    DRIVERS.close()


@task(name="check-neo4j", **TASK_OPTIONS, **neo4j_retry_options())
def check_neo4j(target: Neo4jTarget) -> str:
    """Connect before any work (pipeline.store.connect): bad settings fail fast, a down server is retried."""
    settings = target.resolve()
    try:
        info = store.server_info(DRIVERS.get(settings), settings.database)
    except BaseException:
        DRIVERS.drop(settings)
        raise
    return f"{info['name']} {info['version']} {info['edition']} at {settings.uri}, database {settings.database!r}"


@task(name="neo4j-held", **TASK_OPTIONS, **neo4j_retry_options())
def held_in_neo4j(
    documents: list[tuple[str, str]], target: Neo4jTarget, analysis_settings: dict[str, Any] | None = None
) -> set[str]:
    """Ids of these (id, content hash) documents that Neo4j holds with the same hash (and, given
    ``analysis_settings``, analysed the same way: ``pipeline.store.held_documents``)."""
    settings = target.resolve()
    try:
        return store.held_documents(DRIVERS.get(settings), settings.database, documents, analysis_settings)
    except BaseException:
        DRIVERS.drop(settings)
        raise


@task(name="upsert-neo4j", **TASK_OPTIONS, **neo4j_retry_options())
def upsert_batch(
    analyses: list[DocumentAnalysis], labels: dict[str, str], target: Neo4jTarget
) -> list[WriteResult | FailedDocument]:
    """Upsert the analyses in order, many documents per transaction (``pipeline.store.upsert_batch``).

    A retry starts over with the batch: documents written by the failed attempt come back
    "unchanged". A document whose analysis the store refuses (ValueError) is reported, not retried,
    and the others of the batch are written.
    """
    settings = target.resolve()
    try:
        results = store.upsert_batch(DRIVERS.get(settings), settings.database, analyses, labels)
    except BaseException:
        DRIVERS.drop(settings)  # the next attempt reconnects with freshly resolved settings
        raise
    return [
        FailedDocument.of(a.document, "neo4j", r) if isinstance(r, ValueError) else r
        for a, r in zip(analyses, results, strict=True)
    ]


class FlowNeo4jSink:
    """``pipeline.sinks.Neo4jSink``'s contract, each call a Prefect task with retries on transient errors."""

    name = "neo4j"

    def __init__(self, target: Neo4jTarget, retries: int = NEO4J_RETRIES, delay_s: float = NEO4J_RETRY_DELAY_S) -> None:
        self.target = target
        options = neo4j_retry_options(retries, delay_s)
        self._check = check_neo4j.with_options(**options)
        self._held = held_in_neo4j.with_options(**options)
        self._upsert = upsert_batch.with_options(**options)
        self.server = ""

    def open(self) -> None:
        self.server = self._check(self.target)

    def held(self, documents: Sequence[Document], settings: dict[str, Any] | None = None) -> set[str]:
        return self._held([(d.id, d.content_hash) for d in documents], self.target, settings)

    def write(
        self, analyses: Sequence[DocumentAnalysis], relation_labels: dict[str, str]
    ) -> list[WriteResult | FailedDocument]:
        # quote(): Prefect passes the batch through without inspecting every analysis for futures.
        return self._upsert(quote(list(analyses)), relation_labels, self.target)  # type: ignore[call-overload]

    def close(self) -> dict[str, str]:
        return {"neo4j": self.server}

    def abort(self) -> None:
        """Drivers are pooled per process and closed when the flow ends (``DRIVERS.close``)."""
