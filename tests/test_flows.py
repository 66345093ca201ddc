"""The Prefect ingest flow on the session's Prefect test server and the real (embedded) Neo4j.

Every graph is compared with the one the library builds directly (pipeline.ingest + KnowledgeGraph).
The model loads once in this process (flows.analysis.get_models), so each test costs its extraction.
"""

from __future__ import annotations

import functools
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import networkx as nx
import pytest
from conftest import TEST_PASSWORD

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SECRET_NAME = "qkgraph-test-neo4j-password"


# ── helpers ──────────────────────────────────────────────────────────────────────────────────────


def dump(kg: Any) -> dict[str, Any]:
    """Everything that defines a graph: node and edge attributes (in canonical order) and documents."""
    data = nx.node_link_data(kg.canonical(), edges="edges")
    return {"nodes": data["nodes"], "edges": data["edges"], "documents": kg.documents}


def task_runs(flow_run_id: Any, expect: dict[str, int] | None = None, timeout: float = 60.0) -> list[Any]:
    """The flow run's task runs from the Prefect API (task run states arrive as events: poll)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        done = [r for r in runs if r.state is not None and r.state.is_final()]
        names = [r.name.rsplit("-", 1)[0] for r in done]
        if expect is None or all(names.count(k) >= n for k, n in expect.items()) or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def run_flow(**params: Any) -> tuple[dict[str, Any], Any]:
    """Run ingest_flow in this process; (report, flow run id)."""
    from flows.ingest import ingest_flow

    state = ingest_flow(return_state=True, **params)
    return state.result(), state.state_details.flow_run_id


def neo4j_params(settings: Any, uri: str | None = None) -> dict[str, Any]:
    return {"neo4j_uri": uri or settings.uri, "neo4j_user": settings.user, "neo4j_database": settings.database}


@pytest.fixture(autouse=True)
def _no_neo4j_env(monkeypatch):
    """The flow reads NEO4J_* when nothing is passed: keep a developer's environment out of the tests."""
    for name in ("NEO4J_URI", "NEO4J_USER", "NEO4J_USERNAME", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def password_env(monkeypatch):
    monkeypatch.setenv("NEO4J_PASSWORD", TEST_PASSWORD)


@pytest.fixture(scope="module")
def reference() -> Any:
    """examples/ through the library directly (default settings): the graph every run must give."""
    from flows.analysis import get_models
    from pipeline.graph import KnowledgeGraph
    from pipeline.ingest import IngestSettings, analyze_documents
    from pipeline.text.sources import load_documents

    docs, skipped = load_documents([EXAMPLES])
    assert len(docs) == 4 and not skipped
    models = get_models(IngestSettings())
    kg = KnowledgeGraph(relation_labels=models.relation_labels)
    for analysis in analyze_documents(docs, models):
        kg.add_analysis(analysis)
    return kg


@pytest.fixture(scope="module")
def warm_cache(prefect_harness, tmp_path_factory, reference) -> Path:
    """An analysis cache holding examples/ (filled by one flow run), for tests about Neo4j, not extraction."""
    folder = tmp_path_factory.mktemp("warm-cache")
    report, _ = run_flow(sources=[str(EXAMPLES)], out=str(folder / "graph.json"), cache_dir=str(folder / "cache"))
    assert report["extracted"] == 4
    return folder / "cache"


def copy_cache(warm_cache: Path, tmp_path: Path) -> str:
    target = tmp_path / "cache"
    shutil.copytree(warm_cache, target)
    return str(target)


class FlakyProxy:
    """A TCP forwarder in front of Neo4j that drops every connection while ``down``.

    The first dropped connection arms a timer; ``heal_after`` seconds later connections go through
    to the real server. Seen from the driver, Neo4j is unreachable for that long and then back.
    """

    def __init__(self, upstream: tuple[str, int], heal_after: float = 0.3) -> None:
        self.upstream = upstream
        self.heal_after = heal_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.uri = f"bolt://127.0.0.1:{self.listener.getsockname()[1]}"
        self.down = True
        self.dropped = 0
        self._timer: threading.Timer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def fail_again(self) -> None:
        self.down = True
        self._timer = None

    def _heal(self) -> None:
        self.down = False

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.down:
                self.dropped += 1
                conn.close()
                if self._timer is None:
                    self._timer = threading.Timer(self.heal_after, self._heal)
                    self._timer.daemon = True
                    self._timer.start()
                continue
            upstream = socket.create_connection(self.upstream)
            self._sockets += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                t = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        self.listener.close()
        self._accept.join(timeout=2)
        for s in self._sockets:
            for end in (functools.partial(s.shutdown, socket.SHUT_RDWR), s.close):
                try:
                    end()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=2)


@pytest.fixture()
def flaky_neo4j(neo4j_settings):
    parsed = urlparse(neo4j_settings.uri)
    proxy = FlakyProxy((parsed.hostname, parsed.port))
    try:
        yield proxy
    finally:
        proxy.close()


# ── tests ────────────────────────────────────────────────────────────────────────────────────────


def test_flow_writes_examples_to_neo4j_and_files_like_the_library(
    prefect_harness, neo4j_db, neo4j_settings, reference, tmp_path
):
    """Password from a Prefect Secret block (never a parameter); Neo4j and the file both equal the library."""
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    from pipeline.graph import KnowledgeGraph
    from pipeline.store import read_graph

    Secret(value=TEST_PASSWORD).save(SECRET_NAME, overwrite=True)
    out = tmp_path / "graph.graphml"
    report, flow_run_id = run_flow(
        sources=[str(EXAMPLES)],
        out=str(out),
        batch_size=3,
        cache_dir=str(tmp_path / "cache"),
        neo4j_password_secret=SECRET_NAME,
        **neo4j_params(neo4j_settings),
    )
    assert report["documents"] == 4 and report["extracted"] == 4 and report["cached"] == 0
    assert report["failed"] == [] and report["skipped"] == []
    assert report["neo4j"] == {"added": 4, "unchanged": 0, "replaced": 0}
    assert set(report["outputs"]) == {"graphml", "json", "neo4j"} and out.exists()
    assert dump(read_graph(neo4j_db, neo4j_settings.database)) == dump(reference)
    assert dump(KnowledgeGraph.from_node_link(out.with_suffix(".json"))) == dump(reference)

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
    assert TEST_PASSWORD not in repr(flow_run.parameters)
    names = [r.name.rsplit("-", 1)[0] for r in task_runs(flow_run_id, {"upsert-neo4j": 2, "write-graph": 1})]
    assert names.count("analyse-batch") == 2 and names.count("upsert-neo4j") == 2  # 4 documents, batches of 3


def test_second_run_extracts_nothing_and_a_new_night_extracts_only_new_or_changed_files(
    prefect_harness, reference, tmp_path
):
    from pipeline.graph import KnowledgeGraph

    corpus = tmp_path / "incoming"
    shutil.copytree(EXAMPLES, corpus)
    params = {"sources": [str(corpus)], "out": str(tmp_path / "graph.json"), "cache_dir": str(tmp_path / "cache")}
    first, _ = run_flow(**params)
    assert first["extracted"] == 4 and first["cached"] == 0

    second, flow_run_id = run_flow(**params)
    # The graph file holds all four with the same content hash: none is even looked up in the cache.
    assert second["analysed"] == 0 and second["extracted"] == 0 and second["cached"] == 0
    assert second["files"] == {"added": 0, "unchanged": 4, "replaced": 0}
    names = [r.name.rsplit("-", 1)[0] for r in task_runs(flow_run_id, {"discover-documents": 1, "write-graph": 1})]
    assert "discover-documents" in names and "write-graph" in names
    assert "analyse-batch" not in names
    assert dump(KnowledgeGraph.from_node_link(tmp_path / "graph.json")) == dump(reference)

    # The next night: one file changed, one file new; the other three documents are cache hits.
    (corpus / "curie.txt").write_text((corpus / "curie.txt").read_text() + "\nPierre Curie taught in Paris.\n")
    (corpus / "new.txt").write_text("Lise Meitner worked with Otto Hahn in Berlin.\n")
    third, flow_run_id = run_flow(**params)
    assert third["documents"] == 5 and third["analysed"] == 2 and third["extracted"] == 2 and third["cached"] == 0
    assert third["files"] == {"added": 1, "unchanged": 3, "replaced": 1}
    names = [r.name.rsplit("-", 1)[0] for r in task_runs(flow_run_id, {"analyse-batch": 1})]
    assert names.count("analyse-batch") == 1
    graph = KnowledgeGraph.from_node_link(tmp_path / "graph.json")
    assert set(graph.documents) == set(reference.documents) | {"new.txt"}
    assert graph.documents["curie.txt"] != reference.documents["curie.txt"]


def test_neo4j_unreachable_on_the_first_attempt_is_retried_and_the_retry_writes(
    prefect_harness, neo4j_db, neo4j_settings, flaky_neo4j, warm_cache, reference, tmp_path, password_env
):
    """The real retry path: Prefect retries check-neo4j / upsert-neo4j after a dropped connection.

    The proxy lets connections through 0.3 s after the first one it drops; a retry waits at least
    0.63 x 2 s (Prefect's jitter lower bound for a 50% jitter factor), so attempt 2 reaches Neo4j.
    """
    from prefect.client.orchestration import get_client

    from flows.neo4j_tasks import Neo4jTarget, upsert_batch
    from pipeline.store import read_graph

    report, flow_run_id = run_flow(
        sources=[str(EXAMPLES)],
        cache_dir=copy_cache(warm_cache, tmp_path),
        neo4j_retry_delay_s=2.0,
        **neo4j_params(neo4j_settings, uri=flaky_neo4j.uri),
    )
    assert flaky_neo4j.dropped >= 1
    assert report["extracted"] == 0 and report["neo4j"] == {"added": 4, "unchanged": 0, "replaced": 0}
    assert dump(read_graph(neo4j_db, neo4j_settings.database)) == dump(reference)
    checks = [r for r in task_runs(flow_run_id, {"check-neo4j": 1}) if r.name.startswith("check-neo4j")]
    assert len(checks) == 1 and checks[0].run_count == 2 and checks[0].state.is_completed()

    # The upsert task on its own: down again on its first attempt, through on the retry (all unchanged).
    flaky_neo4j.fail_again()
    dropped = flaky_neo4j.dropped
    analyses = [a for a in _analyses_of(warm_cache)]
    state = upsert_batch.with_options(retries=2, retry_delay_seconds=2.0)(
        analyses, {}, Neo4jTarget(flaky_neo4j.uri, neo4j_settings.user, neo4j_settings.database), return_state=True
    )
    assert state.is_completed() and flaky_neo4j.dropped > dropped
    assert state.result() == ["unchanged"] * 4
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while (
            run := client.read_task_run(state.state_details.task_run_id)
        ).run_count < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
    assert run.run_count == 2


def _analyses_of(cache_dir: Path) -> list[Any]:
    from flows.cache import AnalysisCache
    from pipeline.ingest import IngestSettings
    from pipeline.text.sources import load_documents

    docs, _ = load_documents([EXAMPLES])
    cache = AnalysisCache(cache_dir)
    analyses = [cache.get(d, IngestSettings()) for d in docs]
    assert all(a is not None for a in analyses)
    return analyses


def test_a_permanent_neo4j_error_is_not_retried(prefect_harness, neo4j_settings, tmp_path, monkeypatch):
    """Wrong password: fails at once with the one-line message (no backoff spent on it)."""
    from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

    from flows.neo4j_tasks import is_transient
    from pipeline.errors import Neo4jConnectionError

    monkeypatch.setenv("NEO4J_PASSWORD", "not-the-password")
    t0 = time.monotonic()
    from flows.ingest import ingest_flow

    state = ingest_flow(
        sources=[str(EXAMPLES)], cache_dir=str(tmp_path / "cache"), return_state=True, **neo4j_params(neo4j_settings)
    )
    assert state.is_failed() and time.monotonic() - t0 < 60
    with pytest.raises(Neo4jConnectionError, match="rejected the credentials"):
        state.result()
    runs = task_runs(state.state_details.flow_run_id, {"check-neo4j": 1})
    assert [(r.name.rsplit("-", 1)[0], r.run_count) for r in runs] == [("check-neo4j", 1)]  # nothing else ran
    assert all(is_transient(e) for e in (ServiceUnavailable("x"), SessionExpired("x"), TransientError("x")))
    assert is_transient(Neo4jConnectionError("cannot reach Neo4j at bolt://x:1 (is the server running?)"))
    assert not is_transient(Neo4jConnectionError("Neo4j at bolt://x:1 rejected the credentials for user 'neo4j'"))
    assert not is_transient(ValueError("relation type 'X' is not allowed"))


def test_a_crash_after_two_documents_then_a_rerun_gives_the_uninterrupted_graph(
    prefect_harness, neo4j_db, neo4j_settings, reference, tmp_path, monkeypatch, password_env
):
    import flows.ingest as fi
    from pipeline import store
    from pipeline.graph import KnowledgeGraph

    real_upsert = store.upsert_batch
    written: list[str] = []

    def crash_after_two(driver, database, analyses, *args, **kwargs):
        if len(written) == 2:
            raise RuntimeError("simulated crash while writing the third document")
        written.extend(a.document.id for a in analyses)
        return real_upsert(driver, database, analyses, *args, **kwargs)

    out = tmp_path / "graph.json"
    params = {
        "sources": [str(EXAMPLES)],
        "out": str(out),
        "batch_size": 1,
        "cache_dir": str(tmp_path / "cache"),
        **neo4j_params(neo4j_settings),
    }
    monkeypatch.setattr(store, "upsert_batch", crash_after_two)
    state = fi.ingest_flow(return_state=True, **params)
    assert state.is_failed() and len(written) == 2
    assert not out.exists()  # files are written once, at the end, atomically
    monkeypatch.setattr(store, "upsert_batch", real_upsert)

    report, flow_run_id = run_flow(**params)
    # documents 1-3 were extracted and persisted before the crash; only the fourth is extracted now
    assert report["extracted"] == 1 and report["cached"] == 3
    names = [r.name.rsplit("-", 1)[0] for r in task_runs(flow_run_id, {"analyse-batch": 1})]
    assert names.count("analyse-batch") == 1  # batch_size 1: one task, for the one cache miss
    assert report["neo4j"] == {"added": 2, "unchanged": 2, "replaced": 0}
    assert dump(store.read_graph(neo4j_db, neo4j_settings.database)) == dump(reference)
    assert dump(KnowledgeGraph.from_node_link(out)) == dump(reference)


def test_a_failing_document_is_reported_and_the_others_are_kept(prefect_harness, reference, tmp_path, monkeypatch):
    """A document spaCy refuses (over nlp.max_length) in the middle of a batch: reported, others ingested.

    Sources skip documents over 1,000,000 characters before spaCy sees them, so the test lowers the
    real spaCy pipeline's limit of this process's models to make one ordinary document fail in spaCy.
    """
    from flows.analysis import get_models
    from pipeline.graph import KnowledgeGraph
    from pipeline.ingest import IngestSettings

    models = get_models(IngestSettings())
    monkeypatch.setattr(models.nlp, "max_length", 20_000)
    corpus = tmp_path / "incoming"
    shutil.copytree(EXAMPLES, corpus)
    (corpus / "d-huge.txt").write_text("word " * 6_000)
    report, _ = run_flow(sources=[str(corpus)], out=str(tmp_path / "graph.json"), cache_dir=str(tmp_path / "cache"))
    assert report["documents"] == 5 and report["extracted"] == 4
    assert [(f["id"], f["stage"]) for f in report["failed"]] == [("d-huge.txt", "extract")]
    assert "max_length" in report["failed"][0]["error"] or "E088" in report["failed"][0]["error"]
    assert dump(KnowledgeGraph.from_node_link(tmp_path / "graph.json")) == dump(reference)


def test_globs_and_duplicate_ids_are_reported(prefect_harness, warm_cache, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(EXAMPLES / "curie.txt", a / "curie.txt")
    shutil.copy(EXAMPLES / "curie.txt", b / "curie.txt")
    report, _ = run_flow(
        sources=[str(tmp_path / "*" / "curie.txt"), str(tmp_path / "nothing-*.txt")],
        out=str(tmp_path / "graph.json"),
        cache_dir=copy_cache(warm_cache, tmp_path),
    )
    # Two files of one name from two folders are two documents (ids from their paths, no silent loss);
    # both are cache hits (same text); the pattern that matched nothing is reported.
    assert report["documents"] == 2 and report["cached"] == 2 and report["extracted"] == 0
    reasons = sorted((Path(s).name, r) for s, r, _ in report["skipped"])
    assert reasons == [("nothing-*.txt", "empty")]


def test_dask_two_workers_give_the_single_process_graph(
    prefect_harness, neo4j_db, neo4j_settings, tmp_path, password_env
):
    """Extraction on a 2-worker LocalCluster, upserts from the flow process: the same Neo4j graph."""
    import os

    from flows.scale_out import ingest_flow_on_dask
    from pipeline.store import clear_database, read_graph

    # Fewer layers: each Dask worker loads the model itself, and that is most of this test's time.
    params = {"sources": [str(EXAMPLES)], "layers": "0,1", "top_k": 2, "batch_size": 1, **neo4j_params(neo4j_settings)}
    single, _ = run_flow(cache_dir=str(tmp_path / "cache-single"), **params)
    expected = dump(read_graph(neo4j_db, neo4j_settings.database))
    assert single["neo4j"]["added"] == 4 and expected["edges"]

    clear_database(neo4j_db, neo4j_settings.database)
    state = ingest_flow_on_dask(n_workers=2)(return_state=True, cache_dir=str(tmp_path / "cache-dask"), **params)
    report = state.result()
    assert report["extracted"] == 4 and report["neo4j"] == {"added": 4, "unchanged": 0, "replaced": 0}
    assert report["failed"] == []
    assert os.getpid() not in report["extract_pids"] and len(report["extract_pids"]) >= 1
    assert dump(read_graph(neo4j_db, neo4j_settings.database)) == expected


def test_dask_cluster_of_separate_processes_at_its_address_gives_the_in_process_graph(prefect_harness, tmp_path):
    """The flow against an existing cluster (``--dask-address``): 2 worker processes x 1 thread, torch at 1 thread."""
    import os

    from distributed import Client, LocalCluster

    from flows.scale_out import ingest_flow_on_dask
    from pipeline.graph import KnowledgeGraph

    params = {"sources": [str(EXAMPLES)], "layers": "0,1", "batch_size": 1, "fresh": True}
    single, _ = run_flow(out=str(tmp_path / "single.json"), cache_dir=str(tmp_path / "cache-single"), **params)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        report = ingest_flow_on_dask(cluster.scheduler_address)(
            out=str(tmp_path / "dask.json"), cache_dir=str(tmp_path / "cache-dask"), **params
        )
        torch_threads = client.run(lambda: __import__("torch").get_num_threads())
        engines = client.run(lambda: __import__("prefect.task_engine", fromlist=["_"]).hydrated_context.__name__)
    assert report["extracted"] == single["extracted"] == 4 and report["failed"] == []
    assert len(report["extract_pids"]) == 2 and os.getpid() not in report["extract_pids"]
    assert list(torch_threads.values()) == [1, 1]  # the nanny's OMP_NUM_THREADS=1 (docs/flows.md)
    # The flow put the per-process Prefect context on every worker (flows/worker_context.py).
    assert list(engines.values()) == ["reusing_hydrated_context"] * 2
    # ... and keeps the serialized settings in this, the flow's, process.
    from prefect.context import SettingsContext

    from flows import worker_context

    assert SettingsContext.serialize is worker_context._serialize_settings_once
    worker_context.uninstall_flow_side()
    dask_graph, single_graph = (KnowledgeGraph.from_node_link(tmp_path / f"{n}.json") for n in ("dask", "single"))
    assert dump(dask_graph) == dump(single_graph) and dask_graph.summary()["edges"] > 0


def test_malloc_is_tuned_for_torch_under_a_dask_nanny_unless_kept(monkeypatch):
    import sys

    from flows.analysis import MALLOC_ENV, tune_malloc

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert not tune_malloc()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what the nanny sets (distributed.nanny.pre-spawn-environ)
    assert tune_malloc() == sys.platform.startswith("linux")
    monkeypatch.setenv(MALLOC_ENV, "keep")
    assert not tune_malloc()


def test_analyse_batches_close_at_the_character_budget_or_at_batch_size_misses(tmp_path):
    """Batches follow the work (characters of cache misses), not the document count; hits ride along."""
    from flows.analysis import FlowAnalyser
    from flows.cache import AnalysisCache
    from pipeline.ingest import IngestSettings
    from pipeline.types import Document, DocumentAnalysis

    settings = IngestSettings()
    docs = [Document(f"d{n}", "x" * size, "test") for n, size in enumerate([100, 900, 50, 2000, 10, 10, 10, 10])]

    def batches(analyser: FlowAnalyser) -> list[list[str]]:
        it, out = iter(docs), []
        while batch := analyser.next_batch(it)[0]:
            out.append([d.id for d in batch])
        return out

    by_chars = FlowAnalyser(settings, None, batch_size=3, window=1, log=None, batch_chars=1000)
    assert batches(by_chars) == [["d0", "d1"], ["d2", "d3"], ["d4", "d5", "d6"], ["d7"]]
    by_count = FlowAnalyser(settings, None, batch_size=3, window=1, log=None, batch_chars=None)
    assert batches(by_count) == [["d0", "d1", "d2"], ["d3", "d4", "d5"], ["d6", "d7"]]

    cache = AnalysisCache(tmp_path / "cache")
    for d in (docs[1], docs[3]):  # cached: no extraction, so no characters counted
        cache.put(DocumentAnalysis(d, [(0, len(d.text))], [], []), settings)
    with_hits = FlowAnalyser(settings, cache, batch_size=3, window=1, log=None, batch_chars=1000)
    it = iter(docs)
    batch, hits, misses = with_hits.next_batch(it)
    assert [d.id for d in batch] == ["d0", "d1", "d2", "d3", "d4"] and [d.id for d in misses] == ["d0", "d2", "d4"]
    assert [h is not None for h in hits] == [False, True, False, True, False] and with_hits.cached == 2
    with pytest.raises(ValueError, match="batch_chars"):
        FlowAnalyser(settings, None, batch_size=3, window=1, log=None, batch_chars=0)
