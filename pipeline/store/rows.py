"""One document version, validated and shaped into the rows the upsert statements take.

The document's contribution is ``pipeline.graph.provenance``'s (same dedupe and self-loop rules
as ``KnowledgeGraph``), and the aggregates written along with it use the same ``NodeAggregate`` /
``EdgeAggregate`` / ``FactAggregate`` rules, so the store and the in-memory graph agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.graph.provenance import (
    FACT_KINDS,
    ArcEvidence,
    DocumentContribution,
    EdgeAggregate,
    EdgeId,
    Evidence,
    FactAggregate,
    FactEvidence,
    FactId,
    NodeAggregate,
    NodeContribution,
    canonical_json,
    contribution_from_analysis,
    exact_mean,
    exact_score,
    relation_label,
)
from pipeline.store.schema import (
    check_entity_label,
    check_relation_type,
    check_span,
    relationship_type,
    span_node_labels,
)
from pipeline.types import DocumentAnalysis

__all__ = [
    "DocumentRows",
    "MentionOffsets",
    "evidence_rows",
    "fact_evidence_from_record",
    "fact_evidence_rows",
    "fact_pair_rows",
    "facts_new_rows",
    "facts_rows",
    "mention_rows",
    "pair_rows",
    "relates_new_rows",
    "relates_rows",
    "rows_from_analysis",
    "rows_from_contribution",
    "settings_json",
    "span_rows",
]


@dataclass
class MentionOffsets:
    """Where one span key is mentioned in one document (empty when written from a KnowledgeGraph)."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    sentences: list[int] = field(default_factory=list)


@dataclass
class DocumentRows:
    """A validated document contribution plus what only the store keeps (mention offsets, source)."""

    contribution: DocumentContribution
    source: str = ""
    offsets: dict[str, MentionOffsets] = field(default_factory=dict)

    @property
    def doc_id(self) -> str:
        """The document id."""
        return self.contribution.document


def rows_from_analysis(analysis: DocumentAnalysis) -> DocumentRows:
    """Validate an analysis against the whitelists and turn it into rows.

    Raises:
        ValueError: an empty document id, a span kind or entity label or relation outside the
            whitelists, a unit that is not a string, or an analysis that breaks its contract (index out
            of range, non-finite score).
    """
    doc = analysis.document
    if not isinstance(doc.id, str) or doc.id == "":
        raise ValueError(f"document id must be a non-empty string, got {doc.id!r}")
    offsets: dict[str, MentionOffsets] = {}
    for i, span in enumerate(analysis.spans):
        check_span(doc.id, i, span.label, span.kind)
        at = offsets.setdefault(span.key, MentionOffsets())
        at.starts.append(int(span.start_char))
        at.ends.append(int(span.end_char))
        at.sentences.append(int(span.sent_index))
    allowed: set[Any] = set()  # relation types checked already (the first bad one still raises, in order)
    for i, rel in enumerate(analysis.relations):
        if rel.relation not in allowed:
            allowed.add(check_relation_type(rel.relation))
        _check_unit(doc.id, i, rel.unit)
    return DocumentRows(contribution_from_analysis(analysis), source=doc.source, offsets=offsets)


def _check_unit(doc_id: str, index: int, unit: Any) -> None:
    if not isinstance(unit, str):
        raise ValueError(f"document {doc_id!r}: relation {index} has unit {unit!r} (expected a string)")


def rows_from_contribution(contribution: DocumentContribution) -> DocumentRows:
    """Validate one contribution of a KnowledgeGraph's provenance and wrap it (no mention offsets there)."""
    for position, node in enumerate(contribution.nodes.values()):
        for label in node.labels:
            if label != "":
                check_entity_label(label)
        for kind in node.kinds:
            check_span(contribution.document, position, "", kind)
    for i, ((_, _, relation), items) in enumerate(contribution.edges.items()):
        check_relation_type(relation)
        for ev in items:
            _check_unit(contribution.document, i, ev.unit)
    for i, ((_, _, predicate), fact_items) in enumerate(contribution.facts.items()):
        _check_fact(contribution.document, i, predicate, fact_items)
    return DocumentRows(contribution)


def _check_fact(doc_id: str, index: int, predicate: Any, items: Sequence[FactEvidence]) -> None:
    """ValueError unless the predicate is a non-empty string and every item's kind and units are valid.

    The predicate is free document text: it is only ever a parameter value, so nothing else is asked of it.
    """
    if not isinstance(predicate, str) or not predicate.strip():
        raise ValueError(f"document {doc_id!r}: fact {index} has predicate {predicate!r} (expected non-empty text)")
    for ev in items:
        if ev.kind not in FACT_KINDS:
            raise ValueError(f"document {doc_id!r}: fact {index} has kind {ev.kind!r} (expected one of {FACT_KINDS})")
        for arc in ev.arcs:
            if not isinstance(arc.relation, str) or not isinstance(arc.unit, str):
                raise ValueError(f"document {doc_id!r}: fact {index} has an arc whose relation or unit is not a string")


def settings_json(rows: DocumentRows) -> str:
    """The document's extractor settings as the JSON string ``Document.settings`` holds."""
    return canonical_json(rows.contribution.settings)


def _score_stats(scores: list[float]) -> tuple[float, float]:
    """(score_max, score_mean) of one document's scores for an edge, as ``EdgeAggregate`` computes them
    (the exact mean), with a fast path for the common single score."""
    if len(scores) == 1:
        # exact_mean(exact_score(x), 1) is x itself, except that -0.0 comes back as 0.0
        return scores[0], scores[0] + 0.0
    return max(scores), exact_mean(sum(exact_score(x) for x in scores), len(scores))


def _most_frequent(values: dict[str, int]) -> str:
    """``Tally.best`` of one document's {value: count} (first-seen order): most frequent, ties first seen."""
    return max(values, key=values.__getitem__)


def span_rows(batch: Sequence[tuple[DocumentRows, int]]) -> list[list[Any]]:
    """SPANS rows ``[key, text, label, kind, mentions, documents, extra_labels]``, one per span key the
    batch's documents (each with its ingest number ``seq``) mention: the final properties of a span only
    these documents mention. Sorted by key, so writers lock shared spans in one order (fewer deadlocks).
    """
    # A key one document of the batch mentions takes that document's tallies as they are (the common
    # case, and what NodeAggregate gives for a single document); the others go through NodeAggregate.
    first: dict[str, tuple[str, NodeContribution, int]] = {}
    aggs: dict[str, NodeAggregate] = {}
    for rows, seq in batch:
        c = rows.contribution
        for key, node in c.nodes.items():
            agg = aggs.get(key)
            if agg is None:
                seen = first.get(key)
                if seen is None:
                    first[key] = (c.document, node, seq)
                    continue
                agg = aggs[key] = NodeAggregate()
                agg.add(seen[1], seen[0], seen[2])
            agg.add(node, c.document, seq)
    labels_of: dict[tuple[str, str], list[str]] = {}
    out = []
    for key in sorted(first):
        agg = aggs.get(key)
        a: dict[str, Any]
        if agg is None:
            doc, node, _ = first[key]
            a = {
                "text": _most_frequent(node.texts),
                "label": _most_frequent(node.labels),
                "kind": _most_frequent(node.kinds),
                "mentions": node.mentions,
                "documents": [doc],
            }
        else:
            a = agg.attributes()
        extra = labels_of.get((a["label"], a["kind"]))
        if extra is None:
            extra = labels_of[(a["label"], a["kind"])] = span_node_labels(a["label"], a["kind"])
        out.append(
            [
                key,
                a["text"],
                a["label"],
                a["kind"],
                a["mentions"],
                a["documents"],
                extra,
            ]
        )
    return out


def relates_new_rows(batch: Sequence[DocumentRows]) -> list[list[Any]]:
    """RELATES_NEW rows ``[source, target, type, count, score_max, score_mean, documents, unit,
    relationship type, default label]``: each triple's aggregate over the batch's documents, sorted."""
    # A triple one document of the batch supports takes its statistics from that document's items
    # (best first, so the best item and its unit are items[0]), as EdgeAggregate would compute them;
    # a triple several documents support goes through EdgeAggregate.
    first: dict[EdgeId, tuple[str, list[Evidence]]] = {}
    aggs: dict[EdgeId, EdgeAggregate] = {}
    for rows in batch:
        c = rows.contribution
        for triple, items in c.edges.items():
            agg = aggs.get(triple)
            if agg is None:
                seen = first.get(triple)
                if seen is None:
                    first[triple] = (c.document, items)
                    continue
                agg = aggs[triple] = EdgeAggregate()
                agg.add(seen[0], seen[1], 0)
            agg.add(c.document, items, 0)  # statistics and the best item, no evidence list
    types: dict[str, tuple[str, str]] = {}  # relation -> (relationship type, default label)
    out = []
    for triple in sorted(first):
        s, o, t = triple
        kind = types.get(t)
        if kind is None:
            kind = types[t] = (relationship_type(t), relation_label(t, {}))
        agg = aggs.get(triple)
        if agg is None:
            doc, items = first[triple]
            score_max, score_mean = _score_stats([ev.score for ev in items])
            out.append([s, o, t, len(items), score_max, score_mean, [doc], items[0].unit if items else "", *kind])
        else:
            out.append([s, o, t, agg.count, agg.score_max, agg.score_mean, sorted(agg.documents), agg.unit, *kind])
    return out


def mention_rows(rows: DocumentRows) -> list[list[Any]]:
    """MENTIONS rows, one per span key in first-mention order (``position``) with value tallies."""
    out = []
    doc = rows.doc_id
    for position, (key, node) in enumerate(rows.contribution.nodes.items()):
        at = rows.offsets.get(key, MentionOffsets())
        out.append(
            [
                doc,
                key,
                node.mentions,
                position,
                at.starts,
                at.ends,
                at.sentences,
                list(node.texts),
                list(node.texts.values()),
                list(node.labels),
                list(node.labels.values()),
                list(node.kinds),
                list(node.kinds.values()),
            ]
        )
    return out


def evidence_rows(rows: DocumentRows) -> list[list[Any]]:
    """EVIDENCE rows, one per (source, target, type) triple, items best first, with the exact mean
    (so an aggregate edge fed by this document alone needs no recompute) and each item's unit."""
    out = []
    c = rows.contribution
    for (s, o, t), items in c.edges.items():
        if len(items) == 1:  # the common case, without the per-field comprehensions
            ev = items[0]
            out.append(
                [
                    c.document,
                    s,
                    o,
                    t,
                    ev.score + 0.0,  # _score_stats' mean of one score
                    [ev.score],
                    [ev.sentence_index],
                    [ev.source_start],
                    [ev.source_end],
                    [ev.target_start],
                    [ev.target_end],
                    [ev.unit],
                ]
            )
            continue
        scores = [ev.score for ev in items]
        out.append(
            [
                c.document,
                s,
                o,
                t,
                _score_stats(scores)[1],
                scores,
                [ev.sentence_index for ev in items],
                [ev.source_start for ev in items],
                [ev.source_end for ev in items],
                [ev.target_start for ev in items],
                [ev.target_end for ev in items],
                [ev.unit for ev in items],
            ]
        )
    return out


def pair_rows(pairs: Iterable[EdgeId]) -> list[dict[str, Any]]:
    """PAIRS_READ / RELATES_DELETE rows ``{s, o, t, rt}`` of these triples, sorted."""
    return [{"s": s, "o": o, "t": t, "rt": relationship_type(t)} for s, o, t in sorted(pairs)]


def relates_rows(evidence: Iterable[dict[str, Any]]) -> dict[EdgeId, dict[str, Any]]:
    """RELATES_WRITE rows from PAIRS_READ records ({s, o, t, doc, scores, first, unit}), keyed by triple."""
    aggs: dict[EdgeId, EdgeAggregate] = {}
    for r in evidence:
        agg = aggs.setdefault((r["s"], r["o"], r["t"]), EdgeAggregate())
        agg.add_scores(r["doc"], r["scores"])
        sentence, source_start, source_end, target_start, target_end = r["first"]
        agg.add_best(
            Evidence(
                document=r["doc"],
                sentence_index=int(sentence),
                source_start=int(source_start),
                source_end=int(source_end),
                target_start=int(target_start),
                target_end=int(target_end),
                score=float(r["scores"][0]),
                unit=str(r["unit"]),
            )
        )
    return {
        (s, o, t): {
            "s": s,
            "o": o,
            "t": t,
            "rt": relationship_type(t),
            "default_label": relation_label(t, {}),
            "unit": agg.unit,
            "count": agg.count,
            "score_max": agg.score_max,
            "score_mean": agg.score_mean,
            "documents": sorted(agg.documents),
        }
        for (s, o, t), agg in sorted(aggs.items())
    }


# ── facts ────────────────────────────────────────────────────────────────────────────────────────


def _fact_row(s: str, o: str, p: str, agg: FactAggregate) -> dict[str, Any]:
    return {
        "s": s,
        "o": o,
        "p": p,
        "fact_kind": agg.fact_kind,
        "units": agg.units,
        "count": agg.count,
        "probability_max": agg.probability_max,
        "probability_mean": agg.probability_mean,
        "documents": sorted(agg.documents),
    }


def fact_evidence_rows(rows: DocumentRows) -> list[dict[str, Any]]:
    """FACT_EVIDENCE rows, one per (subject, object, predicate) fact of the document, items best first,
    with the exact mean and the items' arcs flattened (``arc_items``: the item each arc belongs to)."""
    out = []
    c = rows.contribution
    for (s, o, p), items in c.facts.items():
        agg = FactAggregate()
        agg.add_stats(c.document, (ev.probability for ev in items), ())
        arcs = [(i, arc) for i, ev in enumerate(items) for arc in ev.arcs]
        out.append(
            {
                "doc": c.document,
                "s": s,
                "o": o,
                "p": p,
                "probability_mean": agg.probability_mean,
                "probabilities": [ev.probability for ev in items],
                "sentences": [ev.sentence_index for ev in items],
                "subject_starts": [ev.subject_start for ev in items],
                "subject_ends": [ev.subject_end for ev in items],
                "object_starts": [ev.object_start for ev in items],
                "object_ends": [ev.object_end for ev in items],
                "predicate_starts": [ev.predicate_start for ev in items],
                "predicate_ends": [ev.predicate_end for ev in items],
                "kinds": [ev.kind for ev in items],
                "arc_items": [i for i, _ in arcs],
                "arc_relations": [arc.relation for _, arc in arcs],
                "arc_units": [arc.unit for _, arc in arcs],
                "arc_probabilities": [arc.probability for _, arc in arcs],
                "arc_head_starts": [arc.head_start for _, arc in arcs],
                "arc_head_ends": [arc.head_end for _, arc in arcs],
                "arc_dependent_starts": [arc.dependent_start for _, arc in arcs],
                "arc_dependent_ends": [arc.dependent_end for _, arc in arcs],
                "arc_heads": [arc.head for _, arc in arcs],
                "arc_dependents": [arc.dependent for _, arc in arcs],
            }
        )
    return out


def facts_new_rows(batch: Sequence[DocumentRows]) -> list[dict[str, Any]]:
    """FACTS_CREATE / FACTS_NEW rows: each fact's aggregate over the batch's documents, sorted by fact id."""
    aggs: dict[FactId, FactAggregate] = {}
    for rows in batch:
        c = rows.contribution
        for fact, items in c.facts.items():
            aggs.setdefault(fact, FactAggregate()).add(c.document, items, 0)  # statistics and the best item
    return [_fact_row(s, o, p, agg) for (s, o, p), agg in sorted(aggs.items())]


def fact_pair_rows(facts: Iterable[FactId]) -> list[dict[str, Any]]:
    """FACT_PAIRS_READ / FACTS_DELETE rows ``{s, o, p}`` of these facts, sorted."""
    return [{"s": s, "o": o, "p": p} for s, o, p in sorted(facts)]


def _arc(values: Sequence[Any]) -> ArcEvidence:
    relation, unit, probability, head_start, head_end, dependent_start, dependent_end, head, dependent = values
    return ArcEvidence(
        relation=str(relation),
        unit=str(unit),
        probability=float(probability),
        head_start=int(head_start),
        head_end=int(head_end),
        dependent_start=int(dependent_start),
        dependent_end=int(dependent_end),
        head=str(head),
        dependent=str(dependent),
    )


def facts_rows(evidence: Iterable[dict[str, Any]]) -> dict[FactId, dict[str, Any]]:
    """FACTS_WRITE rows from FACT_PAIRS_READ records ({s, o, p, doc, probabilities, kinds, first,
    first_arcs}), keyed by fact."""
    aggs: dict[FactId, FactAggregate] = {}
    for r in evidence:
        agg = aggs.setdefault((r["s"], r["o"], r["p"]), FactAggregate())
        agg.add_stats(r["doc"], r["probabilities"], r["kinds"])
        sentence, subject_start, subject_end, object_start, object_end, predicate_start, predicate_end = r["first"]
        agg.add_best(
            FactEvidence(
                document=r["doc"],
                sentence_index=int(sentence),
                subject_start=int(subject_start),
                subject_end=int(subject_end),
                object_start=int(object_start),
                object_end=int(object_end),
                predicate_start=int(predicate_start),
                predicate_end=int(predicate_end),
                probability=float(r["probabilities"][0]),
                kind=str(r["kinds"][0]),
                arcs=tuple(_arc(a) for a in r["first_arcs"]),
            )
        )
    return {(s, o, p): _fact_row(s, o, p, agg) for (s, o, p), agg in sorted(aggs.items())}


def fact_evidence_from_record(record: dict[str, Any]) -> list[FactEvidence]:
    """The evidence items of one READ_FACT_EVIDENCE record (one document's evidence for one fact), best first."""
    arcs: list[list[ArcEvidence]] = [[] for _ in record["probabilities"]]
    for i, item in enumerate(record["arc_items"]):
        arcs[int(item)].append(
            _arc(
                [
                    record["arc_relations"][i],
                    record["arc_units"][i],
                    record["arc_probabilities"][i],
                    record["arc_head_starts"][i],
                    record["arc_head_ends"][i],
                    record["arc_dependent_starts"][i],
                    record["arc_dependent_ends"][i],
                    record["arc_heads"][i],
                    record["arc_dependents"][i],
                ]
            )
        )
    items = [
        FactEvidence(
            document=record["doc"],
            sentence_index=int(record["sentences"][i]),
            subject_start=int(record["subject_starts"][i]),
            subject_end=int(record["subject_ends"][i]),
            object_start=int(record["object_starts"][i]),
            object_end=int(record["object_ends"][i]),
            predicate_start=int(record["predicate_starts"][i]),
            predicate_end=int(record["predicate_ends"][i]),
            probability=float(probability),
            kind=str(record["kinds"][i]),
            arcs=tuple(arcs[i]),
        )
        for i, probability in enumerate(record["probabilities"])
    ]
    items.sort(key=FactEvidence.sort_key)  # written best first already; the graph relies on it
    return items
