"""Prefect flow for the main job. Thin: every task calls a plain function from ``pipeline``.

    discover documents -> (per batch) analyse (spaCy + extractor) -> merge into the graph -> write files

Run it locally with ``python -m flows.ingest examples/ --out out/graph.graphml``; scheduling,
caching, Neo4j upserts and Dask scale-out build on this flow.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from pipeline.graph import KnowledgeGraph
from pipeline.ingest import IngestSettings, analyze_documents, load_models, write_outputs
from pipeline.sources import load_documents
from pipeline.types import Document, DocumentAnalysis, SkippedInput

_MODELS: dict[IngestSettings, object] = {}


def _models(settings: IngestSettings):
    # Models load once per worker process, not once per task run.
    if settings not in _MODELS:
        _MODELS[settings] = load_models(settings)
    return _MODELS[settings]


@task(name="discover-documents")
def discover(paths: list[str]) -> tuple[list[Document], list[SkippedInput]]:
    return load_documents(paths)


@task(name="analyse-batch", retries=1, retry_delay_seconds=5)
def analyse(batch: list[Document], settings: IngestSettings) -> list[DocumentAnalysis]:
    return list(analyze_documents(batch, _models(settings)))


@task(name="write-graph")
def write(analyses: list[DocumentAnalysis], out: str | None, html: str | None, labels: dict[str, str]) -> dict:
    kg = KnowledgeGraph(relation_labels=labels)
    for a in analyses:
        kg.add_analysis(a)
    written = write_outputs(kg, Path(out) if out else None, Path(html) if html else None)
    return {"summary": kg.summary(), "outputs": written}


@flow(name="qkgraph-ingest")
def ingest_flow(
    paths: list[str],
    out: str | None = "out/graph.graphml",
    html: str | None = None,
    model: str = "all-minilm-l6-v2",
    top_k: int = 3,
    threshold: float = 0.7,
    batch_size: int = 32,
) -> dict:
    """Ingest documents into a graph file; returns the graph summary, outputs and skipped inputs."""
    logger = get_run_logger()
    settings = IngestSettings(model=model, top_k=top_k, threshold=threshold)
    documents, skipped = discover(paths)
    for s in skipped:
        logger.warning("skipped %s (%s): %s", s.source, s.reason, s.detail)
    analyses: list[DocumentAnalysis] = []
    for start in range(0, len(documents), batch_size):
        analyses.extend(analyse(documents[start : start + batch_size], settings))
    result = write(analyses, out, html, _models(settings).relation_labels)
    result["skipped"] = [(s.source, s.reason) for s in skipped]
    logger.info("graph: %s", result["summary"])
    return result


if __name__ == "__main__":
    import sys

    print(ingest_flow(paths=sys.argv[1:] or ["examples"]))
