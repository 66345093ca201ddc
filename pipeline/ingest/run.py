"""The main job, once: documents -> analyser -> every sink. The CLI and the Prefect flow both call it.

    sinks = [FileSink(Path("out/graph.graphml")), Neo4jSink(settings)]
    report = run_ingest(iter_documents(["data/"]), sinks, LocalAnalyser(load_models(IngestSettings())))

What varies between callers is injected: the analyser (in-process here; the flow's submits Prefect
tasks, on Dask or threads, behind a per-document cache) and the sinks (the flow's Neo4j sink adds
retries). The rules are here, once:

* A document that every sink already holds (same id and content hash, analysed with the same
  settings, analysis format and typed relation set; each sink asked about its own state) is not
  analysed again and counts "unchanged" for every sink.
* A document id seen twice in one run keeps its first document; the second is reported as skipped.
* A document the analyser or a sink cannot handle is reported (``IngestReport.failed``) and the run
  goes on.
* A sink that fails as a whole with a ``QkgraphError`` (its server went away) is aborted and named in
  ``IngestReport.sink_errors``; the other sinks go on and are closed normally, so one lost database
  does not cost the graph files. What the lost sink committed stays; a rerun writes the rest.
* Any other error stops the run: every sink is aborted (files are only ever written, atomically, by
  ``close``) and the error propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Protocol, TypeVar

from pipeline.errors import QkgraphError
from pipeline.ingest.models import Models, analyse_isolated
from pipeline.ingest.report import FailedDocument, IngestReport
from pipeline.sinks.base import Sink
from pipeline.types import Document, DocumentAnalysis, SkippedInput

T = TypeVar("T")
#: Documents asked about per ``Sink.held`` call (one query per chunk for Neo4j).
HELD_CHUNK = 64


class Analyser(Protocol):
    """Turns documents into analyses (or failures), one per document, in input order."""

    def __call__(self, documents: Iterable[Document]) -> Iterator[DocumentAnalysis | FailedDocument]: ...

    def relation_labels(self) -> dict[str, str]:
        """Human labels of the relation types used; valid once the first result was yielded."""
        ...

    # Optional: ``analysis_settings() -> dict``, the settings its analyses record; with it, a document a
    # sink holds from another analysis (other settings, format or typed set) is analysed again.


class LocalAnalyser:
    """spaCy and the extractor in this process (``analyse_isolated``)."""

    def __init__(self, models: Models) -> None:
        self.models = models

    def __call__(self, documents: Iterable[Document]) -> Iterator[DocumentAnalysis | FailedDocument]:
        return analyse_isolated(documents, self.models)

    def relation_labels(self) -> dict[str, str]:
        return dict(self.models.relation_labels)

    def analysis_settings(self) -> dict[str, str | int | float]:
        """The settings every analysis of this analyser records (``IngestSettings.analysis_settings``)."""
        return self.models.settings.analysis_settings()


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def run_ingest(
    sources: Iterable[Document | SkippedInput],
    sinks: Sequence[Sink],
    analyser: Analyser,
    *,
    batch_size: int = 16,
    on_progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Send every new or changed document through ``analyser`` into every sink; returns the report.

    Args:
        sources: documents and skipped inputs, e.g. ``pipeline.text.sources.iter_documents(paths)``.
        sinks: where to write; each is opened first (bad settings fail here, before any work).
        analyser: ``LocalAnalyser(load_models(settings))`` or the flow's.
        batch_size: analyses handed to each sink's ``write`` at once.
        on_progress: called with the report after each batch is written.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    t0 = time.perf_counter()
    report = IngestReport()
    active: list[Sink] = []
    try:
        for sink in sinks:
            sink.open()
            active.append(sink)
        labels: dict[str, str] | None = None
        # what the analyser's analyses record: a sink holding a document analysed otherwise does not hold it
        settings = analyser.analysis_settings() if hasattr(analyser, "analysis_settings") else None
        for batch in _chunks(analyser(_pending(sources, active, report, settings)), batch_size):
            good = [a for a in batch if isinstance(a, DocumentAnalysis)]
            report.failed.extend(f for f in batch if isinstance(f, FailedDocument))
            report.tokens += sum(a.n_tokens for a in good)
            if good:
                if labels is None:
                    labels = analyser.relation_labels()
                for sink in list(active):
                    try:
                        _write(sink, good, labels, report)
                    except QkgraphError as exc:
                        _drop(sink, exc, active, report)
            if on_progress is not None:
                on_progress(report)
        for sink in list(active):
            report.outputs.update(sink.close())
            active.remove(sink)
    except BaseException:
        for sink in active:
            sink.abort()
        raise
    report.seconds = time.perf_counter() - t0
    return report


def _drop(sink: Sink, exc: QkgraphError, active: list[Sink], report: IngestReport) -> None:
    report.sink_errors[sink.name] = str(exc)
    active.remove(sink)
    sink.abort()


def _write(sink: Sink, analyses: list[DocumentAnalysis], labels: dict[str, str], report: IngestReport) -> None:
    results = sink.write(analyses, labels)
    if len(results) != len(analyses):
        raise RuntimeError(f"sink {sink.name!r} returned {len(results)} results for {len(analyses)} analyses")
    for result in results:
        if isinstance(result, FailedDocument):
            report.failed.append(result)
        else:
            report.count(sink.name, result)


def _pending(
    sources: Iterable[Document | SkippedInput],
    sinks: list[Sink],
    report: IngestReport,
    settings: dict[str, Any] | None = None,
) -> Iterator[Document]:
    """The documents some sink does not hold yet (in this version: ``Sink.held``), in input order;
    skips and duplicates go to the report."""
    seen: dict[str, str] = {}
    for chunk in _chunks(sources, HELD_CHUNK):
        documents: list[Document] = []
        for item in chunk:
            if isinstance(item, SkippedInput):
                report.skipped.append(item)
            elif item.id in seen:
                report.skipped.append(
                    SkippedInput(
                        item.source, "malformed", f"duplicate document id {item.id!r} (first from {seen[item.id]})"
                    )
                )
            else:
                seen[item.id] = item.source
                documents.append(item)
                if item.replaced_chars:
                    report.replaced_chars += item.replaced_chars
                    report.documents_with_replacements += 1
        report.documents += len(documents)
        held_by: list[set[str]] = []
        for sink in list(sinks):
            try:
                held_by.append(sink.held(documents, settings))
            except QkgraphError as exc:
                _drop(sink, exc, sinks, report)
        held = set.intersection(*held_by) if held_by else set()
        for document in documents:
            if document.id in held:
                for sink in sinks:
                    report.count(sink.name, "unchanged")
            else:
                report.analysed += 1
                yield document
