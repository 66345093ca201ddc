"""Extraction in the flows: discovery, the analyse-batch task (threads or Dask) and the cached, ordered analyser.

Models load once per process (the flow process, or each Dask worker) and stay loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prefect import task

from flows.cache import AnalysisCache
from flows.options import TASK_OPTIONS
from pipeline.errors import QkgraphError
from pipeline.ingest.models import Models, analyse_isolated, load_models
from pipeline.ingest.settings import DEFAULT_BATCH_CHARS, IngestSettings
from pipeline.text.sources import load_documents
from pipeline.types import Document, DocumentAnalysis, FailedDocument, SkippedInput

_MODELS: dict[IngestSettings, Models] = {}
_MODELS_LOCK = threading.Lock()
_log = logging.getLogger("qkgraph.flows")

MALLOC_ENV = "QKGRAPH_WORKER_MALLOC"
"""``keep``: leave a ``MALLOC_TRIM_THRESHOLD_`` of the environment (a Dask nanny's) as it is."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


def tune_malloc() -> bool:
    """Give torch glibc's usual heap back when ``MALLOC_TRIM_THRESHOLD_`` is set; True if changed.

    A Dask nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ``). Setting that variable also switches off glibc's
    dynamic mmap threshold, so every tensor over 128 KiB is mmap()ed and unmapped again: page faults
    on each forward pass, about twice the wall time of an extraction (bench/flow_overhead.py). This
    fixes the thresholds at glibc's own dynamic maxima (mmap 32 MiB, trim 64 MiB) in this process.
    """
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_") or os.environ.get(MALLOC_ENV) == "keep":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20) == 1
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _log.info("malloc thresholds set for torch (MALLOC_TRIM_THRESHOLD_ was %s)", os.environ["MALLOC_TRIM_THRESHOLD_"])
    return done


def get_models(settings: IngestSettings) -> Models:
    """The models for these settings, loaded once per process (malloc tuned first: ``tune_malloc``)."""
    with _MODELS_LOCK:
        if settings not in _MODELS:
            if not _MODELS:
                tune_malloc()
            _MODELS[settings] = load_models(settings)
        return _MODELS[settings]


@dataclass
class BatchResult:
    """What one analyse-batch run returns: the good analyses (in input order) and the failures."""

    analyses: list[DocumentAnalysis]
    failed: list[FailedDocument]
    relation_labels: dict[str, str]
    seconds: float = 0.0
    pid: int = field(default_factory=os.getpid)


def retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """analyse-batch: per-document errors never reach here; a model that cannot load never heals."""
    try:
        state.result()
    except (QkgraphError, ValueError, TypeError, ImportError):
        return False
    except BaseException:  # noqa: BLE001 - e.g. a Dask worker lost, out of memory: worth one retry
        return True
    return False


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


@task(name="discover-documents", **TASK_OPTIONS)
def discover(sources: list[str]) -> list[Document | SkippedInput]:
    """Read the sources (pipeline.text.sources), glob patterns expanded; skips are kept in order."""
    paths, skipped = expand_sources(sources)
    documents, more = load_documents(paths) if paths else ([], [])
    return [*skipped, *more, *documents]


@task(
    name="analyse-batch", retries=1, retry_delay_seconds=10, retry_condition_fn=retry_unless_permanent, **TASK_OPTIONS
)
def analyse_batch(batch: list[Document], settings: IngestSettings) -> BatchResult:
    """Parse, align and extract one batch (pipeline.ingest.analyse_isolated); failures per document."""
    t0 = time.perf_counter()
    models = get_models(settings)
    analyses: list[DocumentAnalysis] = []
    failed: list[FailedDocument] = []
    for item in analyse_isolated(batch, models, chunk=len(batch) or 1):
        if isinstance(item, DocumentAnalysis):
            analyses.append(item)
        else:
            failed.append(item)
    return BatchResult(analyses, failed, dict(models.relation_labels), time.perf_counter() - t0)


@task(name="relation-labels", **TASK_OPTIONS)
def relation_labels_task(settings: IngestSettings) -> dict[str, str]:
    """Only when every document was a cache hit and the labels were not cached (older cache)."""
    return dict(get_models(settings).relation_labels)


HITS_PER_MISS_SLOT = 8
"""A batch holds at most ``batch_size * HITS_PER_MISS_SLOT`` documents, cache hits included."""


class FlowAnalyser:
    """The ``run_ingest`` analyser of the flow: cache hits first, misses in analyse-batch tasks.

    A batch closes at ``batch_size`` cache misses or once its misses hold ``batch_chars`` characters
    (the document that crosses the budget is the batch's last), whichever comes first; cache hits
    ride along for free (at most ``batch_size * HITS_PER_MISS_SLOT`` documents in all). Extraction
    time follows the text's length, not the number of documents: EWT dev's first 100 documents in
    batches of 8 hold 1.7k to 17k characters, and on 2 Dask workers the longest batches decided
    the wall clock. Up to ``window`` batches are submitted ahead of the one being consumed (on Dask
    they run in parallel); results come back in document order. Each analysis is persisted in the
    cache as soon as its batch returns, so a crash later loses no extraction work.
    """

    def __init__(
        self,
        settings: IngestSettings,
        cache: AnalysisCache | None,
        batch_size: int,
        window: int,
        log: Any,
        batch_chars: int | None = DEFAULT_BATCH_CHARS,
    ) -> None:
        if batch_size < 1 or window < 1 or (batch_chars is not None and batch_chars < 1):
            raise ValueError(
                f"batch_size, window and batch_chars must be at least 1, got {batch_size}, {window}, {batch_chars}"
            )
        self.settings = settings
        self.cache = cache
        self.batch_size = batch_size
        self.batch_chars = batch_chars
        self.window = window
        self.log = log
        self.extracted = 0
        self.cached = 0
        self.extract_seconds = 0.0  # summed over batches: time spent inside analyse-batch, wherever it ran
        self.pids: set[int] = set()
        self._labels: dict[str, str] | None = cache.get_labels(settings) if cache is not None else None

    def analysis_settings(self) -> dict[str, str | int | float]:
        """The settings every analysis of the flow records (``IngestSettings.analysis_settings``)."""
        return self.settings.analysis_settings()

    def relation_labels(self) -> dict[str, str]:
        if self._labels is None:
            self._labels = relation_labels_task(self.settings)
            if self.cache is not None:
                self.cache.put_labels(self.settings, self._labels)
        return dict(self._labels)

    def __call__(self, documents: Iterable[Document]) -> Iterator[DocumentAnalysis | FailedDocument]:
        it = iter(documents)
        queue: deque[tuple[list[Document], list[DocumentAnalysis | None], Any]] = deque()

        def fill() -> None:
            while len(queue) < self.window:
                batch, hits, misses = self.next_batch(it)
                if not batch:
                    return
                # Not quote()d: Dask rebuilds namedtuples (quote is one) with a tuple inside.
                future = analyse_batch.submit(misses, self.settings) if misses else None
                queue.append((batch, hits, future))

        fill()
        while queue:
            batch, hits, future = queue.popleft()
            yield from self._resolve(batch, hits, future)
            fill()

    def next_batch(
        self, it: Iterator[Document]
    ) -> tuple[list[Document], list[DocumentAnalysis | None], list[Document]]:
        """(documents, their cache hits or None, the misses) of the next batch, in input order."""
        batch: list[Document] = []
        hits: list[DocumentAnalysis | None] = []
        misses: list[Document] = []
        chars = 0
        budget = self.batch_chars if self.batch_chars is not None else float("inf")
        for document in it:
            hit = self.cache.get(document, self.settings) if self.cache is not None else None
            batch.append(document)
            hits.append(hit)
            if hit is None:
                misses.append(document)
                chars += len(document.text)
            else:
                self.cached += 1
            if len(misses) >= self.batch_size or chars >= budget:
                break
            if len(batch) >= self.batch_size * HITS_PER_MISS_SLOT:
                break
        return batch, hits, misses

    def _resolve(
        self, batch: list[Document], hits: list[DocumentAnalysis | None], future: Any
    ) -> Iterator[DocumentAnalysis | FailedDocument]:
        by_id: dict[str, DocumentAnalysis | FailedDocument] = {}
        if future is not None:
            try:
                result: BatchResult = future.result()
            except Exception as exc:  # noqa: BLE001 - the whole batch failed after its retry: report each document
                self.log.error("a batch of %d documents failed as a whole: %s", len(batch), exc)
                result = BatchResult(
                    [],
                    [FailedDocument.of(d, "extract", exc) for d, h in zip(batch, hits, strict=True) if h is None],
                    {},
                )
            for analysis in result.analyses:
                by_id[analysis.document.id] = analysis
                if self.cache is not None:
                    self.cache.put(analysis, self.settings)  # persisted before anything else
            for failure in result.failed:
                by_id[failure.id] = failure
                self.log.warning("document %s (%s) failed: %s", failure.id, failure.source, failure.error)
            self.extracted += len(result.analyses)
            self.extract_seconds += result.seconds
            if result.analyses:
                self.pids.add(result.pid)
            if self._labels is None and future is not None and (result.analyses or result.relation_labels):
                self._labels = result.relation_labels
                if self.cache is not None:
                    self.cache.put_labels(self.settings, self._labels)
        for document, hit in zip(batch, hits, strict=True):
            item = hit if hit is not None else by_id.get(document.id)
            if item is not None:
                yield item
