"""The ingestion flow: every task is a thin wrapper around a plain function from ``pipeline``.

    discover-documents                      sources (files, folders, globs) -> documents + skips
    (per document) analysis cache lookup    content hash + IngestSettings -> a persisted DocumentAnalysis
    analyse-batch        (per batch)        the cache misses of one batch -> analyze_documents
    upsert-neo4j         (per batch)        the batch's analyses, in document order -> pipeline.store
    write-graph          (once)             merge into the existing node-link JSON -> GraphML/JSON/HTML

Run it::

    python -m flows.ingest examples/ --out out/graph.graphml           # files
    NEO4J_URI=bolt://localhost:7687 NEO4J_PASSWORD=... python -m flows.ingest data/incoming

or from Python ``ingest_flow(sources=["data/incoming"], out="out/graph.graphml")``; scheduling is in
``flows/serve.py`` and ``prefect.yaml``, the Dask runner in ``flows/scale_out.py``. docs/flows.md
explains the design; in short:

* Caching. Each document's analysis is persisted (Prefect ``ResultStore`` on a local folder) under a
  key made of its content hash, ``IngestSettings.as_dict()`` and ``CACHE_FORMAT``; the document id is
  not part of it (a renamed file is a hit). Lookups happen per document in the flow, so a batch only
  extracts its misses and a night that brings one new file extracts one file.
* Retries. Tasks that talk to Neo4j retry with exponential backoff and jitter, but only on transient
  failures (``is_transient``); bad credentials or a bad analysis fail at once. Settings (and the
  password) are resolved inside the task, on every attempt, from the environment or a Prefect
  Secret block; the password is never a flow parameter.
* Order. Upserts run in the flow process, one batch after the other, in document order, whatever
  runs the extraction (thread or Dask): one writer means no lock contention between writers (no
  deadlocks) and the same ``seq`` order, so the same graph, as a single-process run.
* Resume. Neo4j upserts are idempotent per document and analyses are persisted as soon as a batch
  returns, so a rerun after a crash re-extracts nothing already done, finds the documents already
  written "unchanged" and writes the rest in order. File output is written once, atomically, at the
  end, merged into the existing node-link JSON.
* Isolation. A document that fails extraction (or Neo4j's validation) is reported with the reason in
  the flow's result and log; the others go on.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import quote

from pipeline import store
from pipeline.errors import Neo4jConnectionError, QkgraphError
from pipeline.graph import KnowledgeGraph
from pipeline.ingest import IngestSettings, Models, analyze_documents, load_models, parse_layers, write_outputs
from pipeline.store.settings import Neo4jSettings
from pipeline.text.sources import load_documents
from pipeline.types import Document, DocumentAnalysis, SkippedInput

#: Bump when DocumentAnalysis or the extraction code changes what a cached analysis means.
CACHE_FORMAT = 1
#: Environment variable naming the cache folder (default: $PREFECT_HOME/qkgraph-cache).
CACHE_DIR_ENV = "QKGRAPH_CACHE_DIR"
DEFAULT_OUT = "out/graph.graphml"
_ERROR_CHARS = 500


# ── records ──────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class FailedDocument:
    """A document that was read but could not be extracted or written, and why."""

    id: str
    source: str
    stage: str  # "extract" or "neo4j"
    error: str

    @classmethod
    def of(cls, document: Document, stage: str, exc: BaseException) -> FailedDocument:
        text = f"{type(exc).__name__}: {exc}"
        if len(text) > _ERROR_CHARS:
            text = text[: _ERROR_CHARS - 3] + "..."
        return cls(document.id, document.source, stage, text)


@dataclass
class Discovery:
    documents: list[Document]
    skipped: list[SkippedInput]


@dataclass
class BatchResult:
    """What one analyse-batch run returns: the good analyses (in input order) and the failures."""

    analyses: list[DocumentAnalysis]
    failed: list[FailedDocument]
    relation_labels: dict[str, str]
    seconds: float = 0.0
    pid: int = field(default_factory=os.getpid)


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

            password = Secret.load(self.password_secret).get()
        settings = Neo4jSettings.from_env(self.uri, self.user, password, self.database)
        if settings is None:
            raise Neo4jConnectionError("no Neo4j URI: pass neo4j_uri or set NEO4J_URI")
        return settings


# ── models (once per process: the flow process, or each Dask worker) ─────────────────────────────

_MODELS: dict[IngestSettings, Models] = {}
_MODELS_LOCK = threading.Lock()
#: Documents this process has sent through analyze_documents (tests read it; cache hits never count).
EXTRACTED_DOCUMENTS = 0


def get_models(settings: IngestSettings) -> Models:
    with _MODELS_LOCK:
        if settings not in _MODELS:
            _MODELS[settings] = load_models(settings)
        return _MODELS[settings]


def analyse_isolated(batch: list[Document], models: Models) -> tuple[list[DocumentAnalysis], list[FailedDocument]]:
    """analyze_documents over the batch; if it raises, the documents not yet done go one by one.

    The batch is streamed first (windows of several documents share a forward pass); an error
    there cannot be pinned on one document, so each remaining document is retried alone and only
    the ones that fail alone are reported.
    """
    global EXTRACTED_DOCUMENTS
    out: list[DocumentAnalysis | None] = [None] * len(batch)
    failed: list[FailedDocument] = []
    done = 0
    try:
        for analysis in analyze_documents(batch, models):
            out[done] = analysis
            done += 1
    except Exception:
        for i in range(done, len(batch)):
            try:
                out[i] = next(iter(analyze_documents([batch[i]], models)))
            except Exception as exc:
                failed.append(FailedDocument.of(batch[i], "extract", exc))
    EXTRACTED_DOCUMENTS += len(batch)
    return [a for a in out if a is not None], failed


# ── the analysis cache ───────────────────────────────────────────────────────────────────────────


def analysis_cache_key(content_hash: str, settings: IngestSettings) -> str:
    """The cache key of one document's analysis: content hash + extractor settings + CACHE_FORMAT."""
    payload = json.dumps(
        {"format": CACHE_FORMAT, "content_hash": content_hash, "settings": settings.as_dict()}, sort_keys=True
    )
    return "analysis-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _labels_cache_key(settings: IngestSettings) -> str:
    payload = json.dumps({"format": CACHE_FORMAT, "settings": settings.as_dict()}, sort_keys=True)
    return "labels-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()) / "qkgraph-cache"


class AnalysisCache:
    """Persisted analyses in a folder, through Prefect's ResultStore (one file per key).

    A file that cannot be read (e.g. cut short by a crash) counts as a miss and is rewritten.
    """

    def __init__(self, folder: str | Path) -> None:
        from prefect.filesystems import LocalFileSystem
        from prefect.results import ResultStore
        from prefect.serializers import PickleSerializer

        self.folder = Path(folder).expanduser().resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._store = ResultStore(
            result_storage=LocalFileSystem(basepath=str(self.folder)),
            serializer=PickleSerializer(),
            cache_result_in_memory=False,
        )

    def _read(self, key: str) -> Any:
        if not (self.folder / key).is_file():
            return None
        try:
            return self._store.read(key).result
        except Exception:
            return None

    def _write(self, key: str, value: Any) -> None:
        self._store.write(value, key=key)

    def get(self, document: Document, settings: IngestSettings) -> DocumentAnalysis | None:
        cached = self._read(analysis_cache_key(document.content_hash, settings))
        if not isinstance(cached, DocumentAnalysis) or cached.document.text != document.text:
            return None
        # Same text and settings give the same analysis; the id and source are this document's.
        return dataclasses.replace(cached, document=document)

    def put(self, analysis: DocumentAnalysis, settings: IngestSettings) -> None:
        self._write(analysis_cache_key(analysis.document.content_hash, settings), analysis)

    def get_labels(self, settings: IngestSettings) -> dict[str, str] | None:
        labels = self._read(_labels_cache_key(settings))
        return dict(labels) if isinstance(labels, dict) else None

    def put_labels(self, settings: IngestSettings, labels: dict[str, str]) -> None:
        self._write(_labels_cache_key(settings), dict(labels))


# ── Neo4j: retries and drivers ───────────────────────────────────────────────────────────────────


def is_transient(exc: BaseException) -> bool:
    """Worth a retry: Neo4j unreachable or restarting, a lost session, a deadlock or other transient error.

    ``Neo4jConnectionError`` covers unreachable servers, wrong credentials and unknown databases;
    only the first is transient (its message starts "cannot reach", see pipeline.store.connect).
    """
    from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

    if isinstance(exc, (ServiceUnavailable, SessionExpired, TransientError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, Neo4jConnectionError):
        return str(exc).startswith("cannot reach")
    return False


def _retry_if_transient(task, task_run, state) -> bool:  # Prefect's retry_condition_fn
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - classify whatever the task raised
        return is_transient(exc)
    return False


def _retry_unless_permanent(task, task_run, state) -> bool:
    """analyse-batch: per-document errors never reach here; a model that cannot load never heals."""
    try:
        state.result()
    except (QkgraphError, ValueError, TypeError, ImportError):
        return False
    except BaseException:  # noqa: BLE001 - e.g. a Dask worker lost, out of memory
        return True
    return False


_DRIVERS: dict[Neo4jSettings, Any] = {}
_DRIVERS_LOCK = threading.Lock()


def _driver(settings: Neo4jSettings) -> Any:
    with _DRIVERS_LOCK:
        driver = _DRIVERS.get(settings)
        if driver is None:
            driver = _DRIVERS[settings] = store.connect(settings)
        return driver


def _drop_driver(settings: Neo4jSettings) -> None:
    with _DRIVERS_LOCK:
        driver = _DRIVERS.pop(settings, None)
    if driver is not None:
        try:
            driver.close()
        except Exception:
            pass


def close_drivers() -> None:
    for settings in list(_DRIVERS):
        _drop_driver(settings)


# ── tasks ────────────────────────────────────────────────────────────────────────────────────────
# NO_CACHE and no result persistence on every task: Prefect would otherwise hash the inputs (whole
# batches of documents and analyses) for its default cache key. Our cache is per document, above.

_TASK_OPTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
NEO4J_RETRIES = 3
NEO4J_RETRY_DELAY_S = 5.0


def neo4j_retry_options(retries: int = NEO4J_RETRIES, delay_s: float = NEO4J_RETRY_DELAY_S) -> dict[str, Any]:
    """Exponential backoff (delay_s, 2*delay_s, 4*delay_s, ...) with 50% jitter, transient errors only."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=delay_s)(retries) if retries else 0,
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": _retry_if_transient,
    }


def expand_sources(sources: list[str]) -> tuple[list[str], list[SkippedInput]]:
    """Paths as given; glob patterns (``*``, ``?``, ``[``, ``**``) expanded, sorted, duplicates dropped."""
    paths: list[str] = []
    skipped: list[SkippedInput] = []
    for source in sources:
        if glob.has_magic(source):
            matches = sorted(glob.glob(os.path.expanduser(source), recursive=True))
            if not matches:
                skipped.append(SkippedInput(source, "empty", "no file or folder matches this pattern"))
            paths.extend(m for m in matches if m not in paths)
        elif source not in paths:
            paths.append(os.path.expanduser(source))
    return paths, skipped


@task(name="discover-documents", **_TASK_OPTS)
def discover(sources: list[str]) -> Discovery:
    """Read the sources (pipeline.sources); a document id seen twice keeps its first document."""
    paths, skipped = expand_sources(sources)
    documents, more = load_documents(paths) if paths else ([], [])
    skipped.extend(more)
    unique: list[Document] = []
    first: dict[str, Document] = {}
    for doc in documents:
        if doc.id in first:
            skipped.append(
                SkippedInput(
                    doc.source, "malformed", f"duplicate document id {doc.id!r} (first from {first[doc.id].source})"
                )
            )
            continue
        first[doc.id] = doc
        unique.append(doc)
    return Discovery(unique, skipped)


@task(name="analyse-batch", retries=1, retry_delay_seconds=10, retry_condition_fn=_retry_unless_permanent, **_TASK_OPTS)
def analyse_batch(batch: list[Document], settings: IngestSettings) -> BatchResult:
    """Parse, align and extract one batch (pipeline.ingest.analyze_documents); failures per document."""
    t0 = time.perf_counter()
    models = get_models(settings)
    analyses, failed = analyse_isolated(batch, models)
    return BatchResult(analyses, failed, dict(models.relation_labels), time.perf_counter() - t0)


@task(name="relation-labels", **_TASK_OPTS)
def relation_labels(settings: IngestSettings) -> dict[str, str]:
    """Only when every document was a cache hit and the labels were not cached (older cache)."""
    return dict(get_models(settings).relation_labels)


@task(name="check-neo4j", **_TASK_OPTS, **neo4j_retry_options())
def check_neo4j(target: Neo4jTarget) -> str:
    """Connect before any work (pipeline.store.connect): bad settings fail fast, a down server is retried."""
    settings = target.resolve()
    try:
        info = store.server_info(_driver(settings), settings.database)
    except BaseException:
        _drop_driver(settings)
        raise
    return f"{info['name']} {info['version']} {info['edition']} at {settings.uri}, database {settings.database!r}"


@task(name="upsert-neo4j", **_TASK_OPTS, **neo4j_retry_options())
def upsert_batch(analyses: list[DocumentAnalysis], labels: dict[str, str], target: Neo4jTarget) -> dict[str, Any]:
    """Upsert the analyses one transaction per document, in the order given (pipeline.store).

    A retry starts over with the batch: documents written by the failed attempt come back
    "unchanged". A document whose analysis the store refuses (ValueError) is reported, not retried.
    """
    settings = target.resolve()
    counts: dict[str, Any] = {"added": 0, "unchanged": 0, "replaced": 0, "failed": []}
    try:
        driver = _driver(settings)
        for analysis in analyses:
            try:
                result = store.upsert_document(driver, settings.database, analysis, labels)
            except ValueError as exc:
                counts["failed"].append(FailedDocument.of(analysis.document, "neo4j", exc))
                continue
            counts[result] += 1
    except BaseException:
        _drop_driver(settings)  # the next attempt reconnects with freshly resolved settings
        raise
    return counts


def _atomic_outputs(kg: KnowledgeGraph, out: Path | None, html: Path | None) -> dict[str, str]:
    """write_outputs into temporary names beside the targets, then rename: never a half-written file."""
    if out is None and html is None:
        return {}
    tmp_out = out.with_name(f".{out.stem}.partial{out.suffix}") if out is not None else None
    tmp_html = html.with_name(f".{html.stem}.partial{html.suffix}") if html is not None else None
    written = write_outputs(kg, tmp_out, tmp_html)
    final = {"graphml": out, "html": html}
    if out is not None:
        final["json"] = out if out.suffix == ".json" else out.with_suffix(".json")
    result: dict[str, str] = {}
    for kind, tmp in written.items():
        os.replace(tmp, final[kind])
        result[kind] = str(final[kind])
    return result


@task(name="write-graph", **_TASK_OPTS)
def write_graph(
    analyses: list[DocumentAnalysis], out: str | None, html: str | None, fresh: bool, labels: dict[str, str]
) -> dict[str, Any]:
    """Merge the analyses (in order) into the graph at ``out`` (its node-link JSON) and write it."""
    out_path = Path(out) if out else None
    json_path = (
        None if out_path is None else (out_path if out_path.suffix == ".json" else out_path.with_suffix(".json"))
    )
    if json_path is not None and json_path.exists() and not fresh:
        kg = KnowledgeGraph.from_node_link(json_path)
    else:
        kg = KnowledgeGraph()
    kg.set_relation_labels(labels)
    counts = {"added": 0, "unchanged": 0, "replaced": 0}
    for analysis in analyses:
        counts[kg.add_analysis(analysis)] += 1
    outputs = _atomic_outputs(kg, out_path, Path(html) if html else None)
    return {"counts": counts, "summary": kg.summary(), "outputs": outputs}


# ── the flow ─────────────────────────────────────────────────────────────────────────────────────


def _distributed() -> bool:
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None)
    return runner is not None and type(runner).__name__ != "ThreadPoolTaskRunner"


def _check_parameters(top_k: int, threshold: float, batch_size: int, max_in_flight: int) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")


@flow(name="qkgraph-ingest")
def ingest_flow(
    sources: list[str],
    out: str | None = None,
    html: str | None = None,
    fresh: bool = False,
    model: str = "all-minilm-l6-v2",
    layers: str = "all",
    top_k: int = 3,
    threshold: float = 0.7,
    batch_size: int = 32,
    neo4j_uri: str | None = None,
    neo4j_user: str | None = None,
    neo4j_database: str | None = None,
    neo4j_password_secret: str | None = None,
    cache: bool = True,
    cache_dir: str | None = None,
    max_in_flight: int = 8,
    neo4j_retries: int = NEO4J_RETRIES,
    neo4j_retry_delay_s: float = NEO4J_RETRY_DELAY_S,
) -> dict[str, Any]:
    """Ingest documents into Neo4j and/or graph files; unchanged documents are cache hits.

    Args:
        sources: files, folders or glob patterns (.txt, .md, .jsonl, .conllu).
        out: GraphML path (node-link JSON beside it; a .json path writes only JSON). The graph is
            merged into the existing JSON there unless ``fresh``. Default: out/graph.graphml when
            no Neo4j is configured, else no files.
        html: also write the interactive HTML view here.
        model, layers, top_k, threshold: extractor settings ("all", "0,2,4" or "1-3" for layers).
        batch_size: documents per analyse-batch task.
        neo4j_uri, neo4j_user, neo4j_database: override NEO4J_URI / NEO4J_USER / NEO4J_DATABASE.
            Neo4j is written when a URI is given or set in the environment.
        neo4j_password_secret: name of a Prefect Secret block with the password (else NEO4J_PASSWORD).
        cache, cache_dir: per-document analysis cache (default folder $QKGRAPH_CACHE_DIR or
            $PREFECT_HOME/qkgraph-cache).
        max_in_flight: batches submitted ahead of the one being written (Dask runner only; the
            default thread runner extracts one batch at a time).
        neo4j_retries, neo4j_retry_delay_s: retries of the Neo4j tasks on transient errors, with
            exponential backoff from this delay.

    Returns a JSON-able report: documents, extracted, cached, failed (id, source, stage, error),
    skipped (source, reason, detail), neo4j counts, graph summary and outputs, seconds.
    """
    t0 = time.perf_counter()
    logger = get_run_logger()
    _check_parameters(top_k, threshold, batch_size, max_in_flight)
    settings = IngestSettings(model=model, layers=parse_layers(layers), top_k=top_k, threshold=threshold)
    target = Neo4jTarget(neo4j_uri, neo4j_user, neo4j_database, neo4j_password_secret)
    use_neo4j = target.configured()
    if out is None and not use_neo4j:
        out = DEFAULT_OUT
    cache_store = AnalysisCache(cache_dir or default_cache_dir()) if cache else None
    retry = neo4j_retry_options(neo4j_retries, neo4j_retry_delay_s)
    check, upsert = check_neo4j.with_options(**retry), upsert_batch.with_options(**retry)

    try:
        if use_neo4j:
            logger.info("Neo4j: %s", check(target))
        found = discover(sources)
        documents = found.documents
        for s in found.skipped:
            logger.warning("skipped %s (%s): %s", s.source, s.reason, s.detail)

        analyses: list[DocumentAnalysis | None] = [None] * len(documents)
        if cache_store is not None:
            for i, doc in enumerate(documents):
                analyses[i] = cache_store.get(doc, settings)
        cached = sum(a is not None for a in analyses)
        labels = cache_store.get_labels(settings) if cache_store is not None else None
        logger.info(
            "%d documents, %d cache hits%s; extractor %s",
            len(documents),
            cached,
            f" (cache {cache_store.folder})" if cache_store else "",
            settings.as_dict(),
        )

        batches = [list(range(s, min(s + batch_size, len(documents)))) for s in range(0, len(documents), batch_size)]
        window = max_in_flight if _distributed() else 1
        failed: list[FailedDocument] = []
        neo4j_counts = {"added": 0, "unchanged": 0, "replaced": 0} if use_neo4j else None
        extracted = 0
        extract_pids: set[int] = set()
        futures: deque[tuple[int, Any]] = deque()  # (batch number, future), in batch order
        next_batch = 0

        def submit_ahead() -> None:
            nonlocal next_batch
            while next_batch < len(batches) and len(futures) < window:
                misses = [documents[i] for i in batches[next_batch] if analyses[i] is None]
                if misses:
                    # Not quote()d: Dask rebuilds namedtuples (quote is one) with a tuple inside.
                    futures.append((next_batch, analyse_batch.submit(misses, settings)))
                next_batch += 1

        for b, indices in enumerate(batches):
            submit_ahead()
            if futures and futures[0][0] == b:
                _, future = futures.popleft()
                misses = [i for i in indices if analyses[i] is None]
                try:
                    result: BatchResult = future.result()
                except Exception as exc:  # the whole batch failed, after its retry
                    failed.extend(FailedDocument.of(documents[i], "extract", exc) for i in misses)
                    logger.error("batch %d failed as a whole: %s", b, exc)
                else:
                    by_id = {a.document.id: a for a in result.analyses}
                    for i in misses:
                        analysis = by_id.get(documents[i].id)
                        if analysis is not None:
                            analyses[i] = analysis
                            if cache_store is not None:
                                cache_store.put(analysis, settings)  # persisted before anything else
                    extracted += len(result.analyses)
                    extract_pids.add(result.pid)
                    failed.extend(result.failed)
                    if labels is None:
                        labels = result.relation_labels
                        if cache_store is not None:
                            cache_store.put_labels(settings, labels)
                    for f in result.failed:
                        logger.warning("document %s (%s) failed: %s", f.id, f.source, f.error)
            good = [analyses[i] for i in indices if analyses[i] is not None]
            if use_neo4j and good:
                if labels is None:
                    labels = relation_labels(settings)
                    if cache_store is not None:
                        cache_store.put_labels(settings, labels)
                counts = upsert(quote(good), labels, target)
                for key in ("added", "unchanged", "replaced"):
                    neo4j_counts[key] += counts[key]
                failed.extend(counts["failed"])
                for f in counts["failed"]:
                    logger.warning("document %s (%s) not written to Neo4j: %s", f.id, f.source, f.error)

        done = [a for a in analyses if a is not None]
        report: dict[str, Any] = {
            "documents": len(documents),
            "extracted": extracted,
            "cached": cached,
            "failed": [dataclasses.asdict(f) for f in failed],
            "skipped": [[s.source, s.reason, s.detail] for s in found.skipped],
            "neo4j": neo4j_counts,
            "extract_pids": sorted(extract_pids),
            "graph": None,
            "outputs": {},
        }
        if out is not None or html is not None:
            if labels is None:
                labels = relation_labels(settings) if done else {}
            written = write_graph(quote(done), out, html, fresh, labels)
            report["graph"] = written["summary"]
            report["files"] = written["counts"]
            report["outputs"] = written["outputs"]
        report["seconds"] = round(time.perf_counter() - t0, 3)
        logger.info(
            "done: %d documents (%d extracted, %d cached), %d failed, %d skipped; neo4j %s; graph %s",
            len(documents),
            extracted,
            cached,
            len(failed),
            len(found.skipped),
            neo4j_counts,
            report["graph"],
        )
        return report
    finally:
        close_drivers()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the qkgraph ingest flow once.")
    parser.add_argument("sources", nargs="*", default=["examples"])
    parser.add_argument("--out", default=None)
    parser.add_argument("--html", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dask-workers", type=int, default=0, help="run extraction on a LocalCluster of N workers")
    parser.add_argument("--dask-address", default=None, help="run extraction on this Dask scheduler")
    args = parser.parse_args()
    from flows.scale_out import run_ingest

    report = run_ingest(
        sources=args.sources,
        out=args.out,
        html=args.html,
        batch_size=args.batch_size,
        dask_address=args.dask_address,
        dask_workers=args.dask_workers,
    )
    print(json.dumps(report, indent=2))
