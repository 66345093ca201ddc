"""Session-wide real components: one embedded Neo4j server and one Prefect test server per session."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Offline before anything imports transformers/huggingface_hub: tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Prefect: an isolated home (its SQLite database and settings), no telemetry, its default heartbeat
# frequencies (user overrides dropped; flow heartbeats are on at 180 s, see flows/heartbeat.py).
_PREFECT_HOME = tempfile.mkdtemp(prefix="qkgraph-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
os.environ.pop("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", None)
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

TEST_PASSWORD = "qkgraph-test-password"
REPO_ROOT = Path(__file__).resolve().parent.parent
EWT_DEV = REPO_ROOT.parent / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"


_TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    """Report how long the session's servers took to start and stop (figures for the notes)."""
    if _TIMINGS:
        terminalreporter.write_line("qkgraph test servers: " + ", ".join(f"{k} {v:.1f}s" for k, v in _TIMINGS.items()))


@pytest.fixture(scope="session")
def ewt_dev_path() -> Path:
    """UD English EWT dev (CC BY-SA 4.0), shared beside the checkout."""
    if not EWT_DEV.exists():
        pytest.fail(f"gold data missing: {EWT_DEV} (it is laid beside the checkout in ../shared/)")
    return EWT_DEV


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[object]:
    """One embedded Neo4j 5.26 Community for the whole session, Bolt on a free loopback port.

    Auth is on (user neo4j, TEST_PASSWORD) so the wrong-password path is tested on the same server.
    Set QKGRAPH_TEST_NEO4J_URI (and _USER/_PASSWORD) to use a server you started yourself instead.
    """
    from pipeline.store.dev_server import Neo4jDevServer

    external = os.environ.get("QKGRAPH_TEST_NEO4J_URI")
    if external:

        class _External:
            uri = external
            startup_seconds = 0.0

        yield _External()
        return
    server = Neo4jDevServer(heap_mb=768, pagecache_mb=128, password=TEST_PASSWORD)
    server.start()
    _TIMINGS["neo4j start"] = server.startup_seconds or 0.0
    try:
        yield server
    finally:
        t0 = time.monotonic()
        server.stop()
        _TIMINGS["neo4j stop"] = time.monotonic() - t0


@pytest.fixture(scope="session")
def neo4j_settings(neo4j_server) -> object:
    from pipeline.store.settings import Neo4jSettings

    return Neo4jSettings(
        uri=neo4j_server.uri,
        user=os.environ.get("QKGRAPH_TEST_NEO4J_USER", "neo4j"),
        password=os.environ.get("QKGRAPH_TEST_NEO4J_PASSWORD", TEST_PASSWORD),
        database="neo4j",
    )


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_settings) -> Iterator[object]:
    """A driver whose connectivity was verified through our own connect()."""
    from pipeline.store import connect

    driver = connect(neo4j_settings, timeout_s=30.0)
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture()
def neo4j_db(neo4j_driver, neo4j_settings) -> Iterator[object]:
    """The session driver with an empty database; tests must name ``neo4j_settings.database``."""
    from pipeline.store import clear_database

    clear_database(neo4j_driver, neo4j_settings.database)
    yield neo4j_driver


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server (temporary SQLite) for the session; generous startup timeout on 2 cores."""
    from prefect.testing.utilities import prefect_test_harness

    t0 = time.monotonic()
    with prefect_test_harness(server_startup_timeout=180):
        _TIMINGS["prefect start"] = time.monotonic() - t0
        yield


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    from pipeline.model.defaults import default_model_path

    return default_model_path()
