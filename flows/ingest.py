"""The ingestion flow: ``pipeline.ingest.run_ingest`` with Prefect tasks for extraction and Neo4j.

    discover-documents                      sources (files, folders, globs) -> documents + skips
    neo4j-held / analysis cache             what the store holds; cached analyses by content hash
    analyse-batch        (per batch)        the cache misses of one batch (threads, or Dask workers)
    upsert-neo4j         (per batch)        the batch's analyses, in document order -> pipeline.store
    files                (once, at the end) merged into the existing node-link JSON -> GraphML/JSON/HTML

Run it with ``python -m flows examples/ --out out/graph.graphml`` or from Python
``ingest_flow(sources=["data/incoming"], out="out/graph.graphml")``; scheduling is in ``flows/serve.py``
and ``prefect.yaml``, the Dask runner in ``flows/scale_out.py``. docs/flows.md explains the design:

* Caching (flows/cache.py): each document's analysis is persisted under its content hash and the
  extractor settings, so a batch only extracts its misses.
* Retries (flows/neo4j_tasks.py): Neo4j tasks retry on transient errors only; the password is resolved per
  attempt and is never a flow parameter.
* Order: upserts run in the flow process, one batch after the other, in document order, whatever runs
  the extraction: one writer, no lock contention, the same graph as a single-process run.
* Resume: upserts are idempotent per document and analyses are persisted as soon as a batch returns,
  so a rerun after a crash re-extracts nothing already done. Files are written once, atomically.
* Isolation: a document that fails extraction or the store's validation is reported; the others go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.context import FlowRunContext
from prefect.utilities.annotations import quote

from flows import heartbeat
from flows.analysis import FlowAnalyser, discover
from flows.cache import AnalysisCache, default_cache_dir
from flows.neo4j_tasks import NEO4J_RETRIES, NEO4J_RETRY_DELAY_S, FlowNeo4jSink, Neo4jTarget, close_drivers
from flows.options import TASK_OPTIONS
from flows.worker_context import prepare_task_runner
from pipeline.errors import QkgraphError
from pipeline.ingest.run import run_ingest
from pipeline.ingest.settings import (
    DEFAULT_BATCH_CHARS,
    DEFAULT_OUT,
    DEFAULT_THRESHOLD,
    DEFAULT_TOP_K,
    IngestSettings,
    parse_layers,
)
from pipeline.model.defaults import DEFAULT_MODEL
from pipeline.sinks.base import Sink
from pipeline.sinks.files import FileSink
from pipeline.types import Document, SkippedInput

# Before any flow run of this process: the engine looks the heartbeat context up when a run starts.
heartbeat.install()


def _discovered(sources: list[str]) -> Iterator[Document | SkippedInput]:
    yield from discover(sources)


class _FlowFileSink(FileSink):
    """The file sink with its final write as the ``write-graph`` task (visible in the Prefect UI)."""

    def close(self) -> dict[str, str]:
        return write_graph(quote(self))  # type: ignore[call-overload]  # quote(): not inspected by Prefect


@task(name="write-graph", **TASK_OPTIONS)
def write_graph(sink: FileSink) -> dict[str, str]:
    """Write the merged graph (GraphML, node-link JSON, HTML), each file atomically."""
    return FileSink.close(sink)


def _distributed() -> bool:
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None)
    return runner is not None and type(runner).__name__ != "ThreadPoolTaskRunner"


@flow(name="qkgraph-ingest")
def ingest_flow(
    sources: list[str],
    out: str | None = None,
    html: str | None = None,
    fresh: bool = False,
    model: str = DEFAULT_MODEL,
    relation_types: str = "typed",
    layers: str = "all",
    top_k: int = DEFAULT_TOP_K,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 32,
    batch_chars: int | None = DEFAULT_BATCH_CHARS,
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
    """Ingest documents into Neo4j and/or graph files; unchanged documents are not extracted again.

    Args:
        sources: files, folders or glob patterns (.txt, .md, .jsonl, .conllu).
        out: GraphML path (node-link JSON beside it; a .json path writes only JSON). The graph is
            merged into the existing JSON there unless ``fresh``. Default: out/graph.graphml when
            no Neo4j is configured, else no files.
        html: also write the interactive HTML view here.
        model, relation_types, layers, top_k, threshold: extractor settings (relation_types "typed"
            or "subspaces"; "all", "0,2,4" or "1-3" for layers; see IngestSettings).
        batch_size: documents per upsert-neo4j task, and at most this many cache misses per
            analyse-batch task.
        batch_chars: an analyse-batch task closes once its cache misses hold this many characters
            (tasks of similar work keep Dask workers evenly busy; see FlowAnalyser); None: tasks of
            ``batch_size`` misses, whatever their length.
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
    skipped (source, reason, detail), neo4j and files counts, graph summary and outputs, seconds.
    """
    logger = get_run_logger()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if batch_chars is not None and batch_chars < 1:
        raise ValueError(f"batch_chars must be at least 1, got {batch_chars}")
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    settings = IngestSettings(
        model=model, relation_types=relation_types, layers=parse_layers(layers), top_k=top_k, threshold=threshold
    )
    target = Neo4jTarget(neo4j_uri, neo4j_user, neo4j_database, neo4j_password_secret)
    use_neo4j = target.configured()
    if out is None and not use_neo4j:
        out = DEFAULT_OUT
    cache_store = AnalysisCache(cache_dir or default_cache_dir()) if cache else None
    distributed = _distributed()
    if distributed:
        prepare_task_runner(FlowRunContext.get().task_runner)  # type: ignore[union-attr]
    window = max_in_flight if distributed else 1
    analyser = FlowAnalyser(settings, cache_store, batch_size, window, logger, batch_chars=batch_chars)
    sinks: list[Sink] = []
    if use_neo4j:
        sinks.append(FlowNeo4jSink(target, neo4j_retries, neo4j_retry_delay_s))
    files = _FlowFileSink(Path(out) if out else None, Path(html) if html else None, fresh) if out or html else None
    if files is not None:
        sinks.append(files)
    logger.info("extractor %s%s", settings.as_dict(), f"; cache {cache_store.folder}" if cache_store else "")
    try:
        # Discovery is lazy: run_ingest opens the sinks first, so bad Neo4j settings fail before any reading.
        report = run_ingest(_discovered(sources), sinks, analyser, batch_size=batch_size)
    finally:
        close_drivers()
    for s in report.skipped:
        logger.warning("skipped %s (%s): %s", s.source, s.reason, s.detail)
    for f in report.failed:
        logger.warning("document %s (%s) failed at %s: %s", f.id, f.source, f.stage, f.error)
    result = report.to_json()
    result.update(
        extracted=analyser.extracted,
        cached=analyser.cached,
        extract_pids=sorted(analyser.pids),
        extract_seconds=round(analyser.extract_seconds, 3),
        neo4j=report.counts("neo4j") if use_neo4j else None,
        files=report.counts("files") if files is not None else None,
        graph=files.graph.summary() if files is not None else None,
    )
    if report.sink_errors:  # the other sinks were written; the flow run still fails, naming the lost one
        raise QkgraphError("; ".join(f"{name}: {error}" for name, error in report.sink_errors.items()))
    logger.info(
        "done: %d documents (%d extracted, %d cached), %d failed, %d skipped; neo4j %s; graph %s",
        report.documents, analyser.extracted, analyser.cached, len(report.failed), len(report.skipped),
        result["neo4j"], result["graph"],
    )  # fmt: skip
    return result
