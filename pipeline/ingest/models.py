"""Loading the models once and streaming documents through spaCy and the extractor.

settings = IngestSettings(threshold=0.7)             # typed relations (the default)
models = load_models(settings)                       # spaCy + transformer + typed relation set
for analysis in analyze_documents(docs, models):     # DocumentAnalysis per document, in order
    graph.add_analysis(analysis)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from spacy.language import Language

from pipeline.gc_pause import frozen_heap
from pipeline.ingest.settings import DEFAULT_THRESHOLD, IngestSettings
from pipeline.model.extractor import KnowledgeGraphExtractor, RelationalSubspace
from pipeline.relations import RelationExtractor, RelationStats
from pipeline.relations.facts import FactCalibration
from pipeline.relations.typed import TypedRelation, TypedRelationsMissingError
from pipeline.text.nlp import load_spacy
from pipeline.text.sources import MAX_DOCUMENT_CHARS
from pipeline.text.spans import SpanOptions, parse_documents
from pipeline.types import Document, DocumentAnalysis, FailedDocument

log = logging.getLogger("qkgraph.ingest")

__all__ = [
    "MAX_DOCUMENT_CHARS",
    "Models",
    "analyse_isolated",
    "analyze_documents",
    "load_models",
    "relation_labels_for",
]


class UntypedFallbackWarning(UserWarning):
    """Typed relations were asked for, but the model has none: ingestion uses untyped subspaces."""


@dataclass
class Models:
    """Everything loaded once per process for an IngestSettings.

    ``settings.relation_types`` is the mode actually used (``subspaces`` after a fallback), so the
    provenance of every analysis says what produced it. ``subspaces`` holds TypedRelation objects in
    typed mode, RelationalSubspace objects otherwise.
    """

    settings: IngestSettings
    nlp: Language
    extractor: KnowledgeGraphExtractor
    subspaces: list[RelationalSubspace] | list[TypedRelation]
    relation_labels: dict[str, str] = field(default_factory=dict)
    fact_knots: FactCalibration | None = None  # the typed set's fact calibration map (None: facts claim the product)


def load_models(settings: IngestSettings) -> Models:
    """Load spaCy and the transformer, and choose the relations: the model's typed relation set
    (``relation_types="typed"``), or the top_k untyped subspaces per layer.

    A model without a typed set falls back to the untyped subspaces with an UntypedFallbackWarning
    (and a log line) naming the command that builds the set.

    Raises:
        ValueError: a layer outside the model's range.
        ModelNotFoundError / UnsupportedArchitectureError: the model cannot be loaded.
    """
    from pipeline.model.adapters import load_model

    lm = load_model(settings.model)
    ex = KnowledgeGraphExtractor(lm.model, lm.tokenizer)
    n = ex.adapter.n_layers
    layers = settings.layers if settings.layers is not None else tuple(range(n))
    if any(not 0 <= layer < n for layer in layers):
        raise ValueError(f"layers must be in [0, {n - 1}] for {lm.name}, got {list(layers)}")
    nlp = load_spacy(settings.spacy_model)
    nlp.max_length = max(nlp.max_length, MAX_DOCUMENT_CHARS + 1)
    if settings.relation_types == "typed":
        try:
            typed_set = ex.use_typed_relations(lm.name)
        except TypedRelationsMissingError as exc:
            message = f"{exc}. Falling back to untyped relational subspaces (--relation-types subspaces)."
            log.warning(message)
            warnings.warn(message, UntypedFallbackWarning, stacklevel=2)
            settings = replace(settings, relation_types="subspaces")
        else:
            typed = [t for t in typed_set.relations.values() if t.layer in layers]
            return Models(settings, nlp, ex, typed, {t.relation: t.relation for t in typed}, typed_set.fact_knots)
    subspaces = [s for layer in layers for s in ex.extract_relational_subspaces(layer, settings.top_k, typed=False)]
    return Models(settings, nlp, ex, subspaces, relation_labels_for(lm.name, subspaces, settings.threshold))


def relation_labels_for(
    model_name: str, subspaces: Sequence[RelationalSubspace], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, str]:
    """Relation names for untyped subspaces, only where the name is a claim that holds: a subspace
    gets its best relation as a label when its pairs at the threshold carry that relation with a
    held-out labelled precision of at least the threshold. (None of the shipped spread-ranked
    subspaces does: their labels hold for about 4% of their pairs, so untyped edges show ids.)"""
    from pipeline.relations.labels import load_labels_artifact

    try:
        data = load_labels_artifact(model_name)
    except (OSError, ValueError, KeyError) as exc:  # a missing or unreadable artifact must not stop ingestion
        log.info("no relation labels for %s: %s", model_name, exc)
        return {}
    ids = {s.id for s in subspaces}
    out = {}
    for sid, entry in data.get("subspaces", {}).items():
        precision = (entry.get("heldout_at_threshold") or {}).get("precision")
        if sid in ids and entry.get("label") and precision is not None and precision >= threshold:
            out[sid] = f"{entry['label']} (P {precision:.2f})"
    return out


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
        batch_tokens=s.batch_tokens,
        settings=s.analysis_settings(),
        fact_threshold=s.fact_threshold,
        fact_knots=models.fact_knots,
    )
    if stats is not None:
        rex.stats = stats
    parsed = parse_documents(models.nlp, documents, options=SpanOptions(word_pos=s.word_pos))
    # the models are alive for the whole stream: full collections need not walk them (gc_pause)
    with frozen_heap():
        yield from rex.run(parsed)


def analyse_isolated(
    documents: Iterable[Document], models: Models, stats: RelationStats | None = None, chunk: int = 32
) -> Iterator[DocumentAnalysis | FailedDocument]:
    """``analyze_documents`` in chunks; a document that fails is reported, the others go on.

    A chunk is streamed first (windows of several documents share a forward pass). An error there
    cannot be pinned on one document, so the documents of the chunk not yet done are retried one
    by one and only the ones that fail alone are reported. Output keeps the input order.
    """
    batch: list[Document] = []
    for document in documents:
        batch.append(document)
        if len(batch) >= chunk:
            yield from _isolated_chunk(batch, models, stats)
            batch = []
    if batch:
        yield from _isolated_chunk(batch, models, stats)


def _isolated_chunk(
    batch: list[Document], models: Models, stats: RelationStats | None
) -> Iterator[DocumentAnalysis | FailedDocument]:
    done: list[DocumentAnalysis] = []
    try:
        for analysis in analyze_documents(batch, models, stats):
            done.append(analysis)
    except Exception:  # noqa: BLE001 - any error of one document must not sink the others
        yield from done
        for document in batch[len(done) :]:
            try:
                yield next(iter(analyze_documents([document], models, stats)))
            except Exception as exc:  # noqa: BLE001 - reported with the document's name and the error
                yield FailedDocument.of(document, "extract", exc)
        return
    yield from done
