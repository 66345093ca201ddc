"""The main job as plain functions: paths -> documents -> spans -> relations -> graph -> files (or Neo4j).

Each step is usable on its own (the Prefect flows call them one by one):

    settings = IngestSettings(model="all-minilm-l6-v2", top_k=3, threshold=0.7)
    models = load_models(settings)                       # spaCy + transformer + chosen subspaces
    docs, skipped = load_documents(paths)                # pipeline.sources
    for analysis in analyze_documents(docs, models):     # DocumentAnalysis per document
        graph.add_analysis(analysis)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.model.extractor import KnowledgeGraphExtractor, RelationalSubspace
from pipeline.relations import RelationExtractor, RelationStats
from pipeline.text.nlp import DEFAULT_SPACY, load_spacy
from pipeline.text.spans import DEFAULT_WORD_POS, SpanOptions, parse_documents
from pipeline.types import Document, DocumentAnalysis, SkippedInput

log = logging.getLogger("qkgraph.ingest")

MAX_DOCUMENT_CHARS = 1_000_000
"""Documents above this are skipped as too_large (spaCy's own default limit; parsing memory grows with it)."""


@dataclass(frozen=True)
class IngestSettings:
    """Extractor and span settings; they identify an extraction (part of the cache key of the flows)."""

    model: str = "all-minilm-l6-v2"
    layers: tuple[int, ...] | None = None  # None: all layers
    top_k: int = 3  # relational subspaces per layer
    threshold: float = 0.7
    max_tokens: int = 512
    overlap: int = 1
    batch_windows: int = 16
    spacy_model: str = DEFAULT_SPACY
    word_pos: tuple[str, ...] = DEFAULT_WORD_POS

    def as_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = "all" if self.layers is None else ",".join(map(str, self.layers))
        d["word_pos"] = ",".join(self.word_pos)
        return d


@dataclass
class Models:
    """Everything loaded once per process for an IngestSettings."""

    settings: IngestSettings
    nlp: object
    extractor: KnowledgeGraphExtractor
    subspaces: list[RelationalSubspace]
    relation_labels: dict[str, str] = field(default_factory=dict)


def parse_layers(text: str | None, n_layers: int | None = None) -> tuple[int, ...] | None:
    """'all' / None -> None; '0,2,4' or '1-3' -> a tuple of ints."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    if n_layers is not None and any(not 0 <= layer < n_layers for layer in out):
        raise ValueError(f"--layers must be in [0, {n_layers - 1}], got {text!r}")
    return tuple(sorted(set(out)))


def load_models(settings: IngestSettings) -> Models:
    """Load spaCy and the transformer, and choose the relational subspaces (top_k per layer)."""
    from pipeline.model.adapters import load_model

    lm = load_model(settings.model)
    ex = KnowledgeGraphExtractor(lm.model, lm.tokenizer)
    n = ex.adapter.n_layers
    layers = settings.layers if settings.layers is not None else tuple(range(n))
    if any(not 0 <= layer < n for layer in layers):
        raise ValueError(f"layers must be in [0, {n - 1}] for {lm.name}, got {list(layers)}")
    subspaces = [s for layer in layers for s in ex.extract_relational_subspaces(layer, top_k=settings.top_k)]
    nlp = load_spacy(settings.spacy_model)
    nlp.max_length = max(nlp.max_length, MAX_DOCUMENT_CHARS + 1)
    return Models(settings, nlp, ex, subspaces, relation_labels_for(lm.name, subspaces))


def relation_labels_for(model_name: str, subspaces: Sequence[RelationalSubspace]) -> dict[str, str]:
    """Human labels of the chosen relation types, where the evaluation has labelled them."""
    try:
        from pipeline.evaluation import load_relation_labels
    except ImportError:
        return {}
    try:
        labels = load_relation_labels(model_name)
    except Exception as exc:  # a missing or unreadable artifact must not stop ingestion
        log.info("no relation labels for %s: %s", model_name, exc)
        return {}
    ids = {s.id for s in subspaces}
    return {k: v for k, v in labels.items() if k in ids}


def analyze_documents(
    documents: Iterable[Document], models: Models, stats: RelationStats | None = None
) -> Iterator[DocumentAnalysis]:
    """Stream documents through spaCy and the extractor; one DocumentAnalysis per document, in order."""
    s = models.settings
    rex = RelationExtractor(
        models.extractor,
        models.subspaces,
        threshold=s.threshold,
        max_tokens=s.max_tokens,
        overlap=s.overlap,
        batch_windows=s.batch_windows,
        settings=s.as_dict(),
    )
    if stats is not None:
        rex.stats = stats
    parsed = parse_documents(models.nlp, documents, options=SpanOptions(word_pos=s.word_pos))
    yield from rex.run(parsed)


@dataclass
class IngestReport:
    """What an ingest did: counts, skips with reasons, outputs."""

    documents: int = 0
    added: int = 0
    unchanged: int = 0
    replaced: int = 0
    skipped: list[SkippedInput] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)

    def skipped_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.skipped:
            out[s.reason] = out.get(s.reason, 0) + 1
        return out


def write_outputs(kg, out: Path | None, html: Path | None, title: str = "qkgraph") -> dict[str, str]:
    """GraphML (+ node-link JSON beside it) and the HTML view; returns what was written."""
    from pipeline.graph.html import write_html

    written: dict[str, str] = {}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".json":
            kg.to_node_link(out)
            written["json"] = str(out)
        else:
            kg.to_graphml(out)
            written["graphml"] = str(out)
            json_path = out.with_suffix(".json")
            kg.to_node_link(json_path)
            written["json"] = str(json_path)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        write_html(kg, html, title=title)
        written["html"] = str(html)
    return written
