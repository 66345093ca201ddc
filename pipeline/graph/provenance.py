"""The provenance format: what each document contributed to the graph, and the rules that aggregate it.

A ``DocumentContribution`` is everything one document version added: mentions per node (with
value counts in first-seen order), deduplicated evidence per (source, target, relation) edge,
deduplicated fact evidence per (subject, object, predicate) fact, and the sentences that evidence
cites. A ``Provenance`` is the contributions in ingest order. Both the
in-memory ``KnowledgeGraph`` and the Neo4j store (``pipeline.store``) build node and edge attributes
from contributions with the rules below, so they agree bit for bit:

* ``contribution_from_analysis``: self-loops dropped; within one document the same (source key,
  target key, relation, sentence index) keeps only its best occurrence (``Evidence.sort_key``), and
  the same (subject key, object key, predicate, sentence index) likewise (``FactEvidence.sort_key``).
* ``exact_score`` / ``exact_mean``: score sums in exact integers, the mean correctly rounded, so
  the result never depends on the order documents arrive in.
* ``Tally``: most frequent value; ties go to the value seen first.
* ``NodeAggregate`` / ``EdgeAggregate`` / ``FactAggregate``: node, relation edge and fact edge
  attributes from any set of contributions.

* ``relation_label``: an edge's label: the human label if one is known, else the relation's own
  name for a typed relation (a UD name from ``DEPENDENCY_RELATIONS``), else "".

Relations are typed (``relation`` a UD name such as ``nsubj``, ``unit`` the typed unit behind the
evidence) or untyped subspaces (``relation`` a subspace id such as ``L2H8k12``, ``unit`` "").

Facts (``pipeline.types.SpanFact``) are ``subject -[predicate]-> object`` statements composed from
typed arcs; a fact is identified by (subject key, object key, predicate), ``FactId``, and its
evidence (``FactEvidence``) keeps the arcs it rests on (``ArcEvidence``, with the two words' text).

JSON layout (``Provenance.to_json``, stored under ``PROVENANCE_KEY`` in exports)::

    {"format": 3, "contributions": [{"document", "content_hash", "settings",
      "nodes": [{"node", "mentions", "texts": [[value, count], ...], "labels": ..., "kinds": ...}],
      "evidence": [{"source", "target", "relation", "sentence_index", "source_start", "source_end",
                    "target_start", "target_end", "score", "unit"}],
      "facts": [{"subject", "object", "predicate", "sentence_index", "subject_start", "subject_end",
                 "object_start", "object_end", "predicate_start", "predicate_end", "probability",
                 "kind", "arcs": [{"relation", "unit", "probability", "head_start", "head_end",
                                   "dependent_start", "dependent_end", "head", "dependent"}]}],
      "sentences": [[index, text], ...]}]}

Format 2 (before facts) is the same without ``facts``, format 1 (before typed relations) also without
``unit``; both are still read (no facts, ``unit`` "").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.types import DEPENDENCY_RELATIONS, DocumentAnalysis

#: Version of the provenance block written into exports; bump when its layout changes.
PROVENANCE_FORMAT = 3
#: Formats ``Provenance.from_json`` reads (1: evidence without ``unit``; 1 and 2: no ``facts``).
READABLE_PROVENANCE_FORMATS = frozenset({1, 2, 3})
#: Name of the top-level node-link key and of the GraphML graph attribute holding provenance.
PROVENANCE_KEY = "qkgraph_provenance"

EdgeId = tuple[str, str, str]  # (source node key, target node key, relation name or subspace id)
FactId = tuple[str, str, str]  # (subject node key, object node key, predicate)

#: The fact kinds (``pipeline.types.FactKind``), in the order that breaks a tie for ``fact_kind``.
FACT_KINDS: tuple[str, ...] = ("action", "oblique", "copula", "possession")
#: Prefix of a fact edge's key in the NetworkX graph: ``"fact:" + predicate``. No relation name or
#: subspace id contains ':' after "fact", so a predicate ("mark", "case") never collides with a relation.
FACT_KEY_PREFIX = "fact:"


def fact_key(predicate: str) -> str:
    """The NetworkX edge key of a fact edge: ``"fact:" + predicate``."""
    return FACT_KEY_PREFIX + predicate


#: The relation names of typed relations (``pipeline.types.DEPENDENCY_RELATIONS``).
TYPED_RELATIONS = frozenset(DEPENDENCY_RELATIONS)


def is_typed_relation(relation: str) -> bool:
    """True for a typed relation (a UD name such as ``nsubj``), False for a subspace id (``L2H8k12``)."""
    return relation in TYPED_RELATIONS


def relation_label(relation: str, labels: Mapping[str, str]) -> str:
    """An edge's label: ``labels[relation]`` if non-empty, else the name of a typed relation, else ""."""
    return labels.get(relation) or (relation if relation in TYPED_RELATIONS else "")


# ── exact arithmetic and tie-breaks ──────────────────────────────────────────────────────────────

# Every finite float is an integer multiple of 2**-1074 (the smallest subnormal), so scores
# scaled by 2**1074 are exact Python ints: their sums are exact and order-independent, and int
# true division (used for the mean) is correctly rounded. Much cheaper than fractions.Fraction.
_SCALE_BITS = 1074


def exact_score(score: float) -> int:
    """The score as an exact integer number of 2**-1074 units (sums of these are exact)."""
    numerator, denominator = score.as_integer_ratio()  # denominator is a power of two
    return numerator << (_SCALE_BITS - (denominator.bit_length() - 1))


def exact_mean(exact_sum: int, count: int) -> float:
    """The correctly rounded mean of ``count`` scores whose ``exact_score`` values sum to ``exact_sum``."""
    return exact_sum / (count << _SCALE_BITS)


class Tally:
    """Value counts whose winner is the most frequent value, ties going to the one seen first.

    "First seen" is the smallest ``first_seen`` order key passed to ``add`` (extended by the
    value's position in that call), so the winner does not depend on the order of the calls.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, tuple[Any, ...]]] = {}

    def add(self, values: Mapping[str, int], first_seen: tuple[Any, ...]) -> None:
        """Add {value: count} (in first-seen order) from one source ordered by ``first_seen``."""
        for position, (value, n) in enumerate(values.items()):
            order = (*first_seen, position)
            entry = self._entries.get(value)
            if entry is None:
                self._entries[value] = (int(n), order)
            else:
                self._entries[value] = (entry[0] + int(n), min(entry[1], order))

    def best(self) -> str:
        """The most frequent value; ties -> first seen. ValueError when nothing was added."""
        if not self._entries:
            raise ValueError("empty tally")
        return min(self._entries.items(), key=lambda item: (-item[1][0], item[1][1]))[0]


# ── JSON ─────────────────────────────────────────────────────────────────────────────────────────

#: Attributes that exports store as JSON strings where only scalars fit (GraphML, Neo4j properties).
JSON_ATTRS = frozenset({"documents", "evidence", "relation_labels", "settings", "units", PROVENANCE_KEY})


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no NaN, compact, UTF-8 text kept readable."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def is_scalar(value: Any) -> bool:
    """True for values a GraphML attribute can hold as they are."""
    return isinstance(value, (str, int, float, bool))


def encode_attribute(value: Any) -> Any:
    """Scalars as they are, lists and dicts as canonical JSON strings."""
    return value if is_scalar(value) else canonical_json(value)


def decode_attribute(name: str, value: Any) -> Any:
    """Undo ``encode_attribute`` for the attributes in ``JSON_ATTRS``; anything else as it is."""
    if name in JSON_ATTRS and isinstance(value, str):
        return json.loads(value)
    return value


# ── records ──────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Evidence:
    """One deduplicated piece of evidence for an edge, from one sentence of one document."""

    document: str
    sentence_index: int
    source_start: int
    source_end: int
    target_start: int
    target_end: int
    score: float
    unit: str = ""  # the typed unit behind it ("" for untyped subspaces)

    def sort_key(self) -> tuple[float, str, int, int, int, int, int, str]:
        """Best first: highest score, then document id, offsets, sentence, unit (a total order)."""
        return (
            -self.score,
            self.document,
            self.source_start,
            self.source_end,
            self.target_start,
            self.target_end,
            self.sentence_index,
            self.unit,
        )


@dataclass(frozen=True)
class ArcEvidence:
    """One typed word arc a fact rests on (``pipeline.types.FactArc``) plus the two words' text."""

    relation: str
    unit: str  # "" for a parser's arcs
    probability: float
    head_start: int
    head_end: int
    dependent_start: int
    dependent_end: int
    head: str = ""  # the head word's text (document text at head_start:head_end)
    dependent: str = ""  # the dependent word's text

    def order(self) -> tuple[str, str, float, int, int, int, int, str, str]:
        """A total order of arcs (for the tie-break between two equally probable facts)."""
        return (
            self.relation,
            self.unit,
            -self.probability,
            self.head_start,
            self.head_end,
            self.dependent_start,
            self.dependent_end,
            self.head,
            self.dependent,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "relation": self.relation,
            "unit": self.unit,
            "probability": self.probability,
            "head_start": self.head_start,
            "head_end": self.head_end,
            "dependent_start": self.dependent_start,
            "dependent_end": self.dependent_end,
            "head": self.head,
            "dependent": self.dependent,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ArcEvidence:
        """Parse ``to_json`` data."""
        return cls(
            relation=str(item["relation"]),
            unit=str(item["unit"]),
            probability=float(item["probability"]),
            head_start=int(item["head_start"]),
            head_end=int(item["head_end"]),
            dependent_start=int(item["dependent_start"]),
            dependent_end=int(item["dependent_end"]),
            head=str(item.get("head", "")),
            dependent=str(item.get("dependent", "")),
        )


@dataclass(frozen=True)
class FactEvidence:
    """One deduplicated piece of evidence for a fact, from one sentence of one document."""

    document: str
    sentence_index: int
    subject_start: int
    subject_end: int
    object_start: int
    object_end: int
    predicate_start: int  # -1 for possession (no predicate word)
    predicate_end: int
    probability: float
    kind: str  # a FactKind
    arcs: tuple[ArcEvidence, ...] = ()

    def sort_key(self) -> tuple[Any, ...]:
        """Best first: highest probability, then document id, offsets, sentence, kind, arcs (a total order)."""
        return (
            -self.probability,
            self.document,
            self.subject_start,
            self.subject_end,
            self.object_start,
            self.object_end,
            self.sentence_index,
            self.predicate_start,
            self.predicate_end,
            self.kind,
            tuple(arc.order() for arc in self.arcs),
        )

    def fields(self) -> dict[str, Any]:
        """Its offsets, probability, kind and arcs as plain JSON data (the document id left out)."""
        return {
            "sentence_index": self.sentence_index,
            "subject_start": self.subject_start,
            "subject_end": self.subject_end,
            "object_start": self.object_start,
            "object_end": self.object_end,
            "predicate_start": self.predicate_start,
            "predicate_end": self.predicate_end,
            "probability": self.probability,
            "kind": self.kind,
            "arcs": [arc.to_json() for arc in self.arcs],
        }

    @property
    def units(self) -> list[str]:
        """The distinct non-empty unit ids of its arcs, in arc order (subject arc first)."""
        return list(dict.fromkeys(arc.unit for arc in self.arcs if arc.unit))


@dataclass
class NodeContribution:
    """What one document says about one node. The dicts keep first-seen order within the document."""

    mentions: int = 0
    texts: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class DocumentContribution:
    """Everything one document version added to the graph; the unit of removal and replacement.

    ``nodes`` keeps the order of each node's first mention in the document; ``edges`` is sorted by
    edge id and each evidence list best first; ``facts`` likewise by fact id, best first;
    ``sentences`` holds only the sentences cited (by relation or fact evidence).
    """

    document: str
    content_hash: str
    settings: dict[str, Any]
    nodes: dict[str, NodeContribution]
    edges: dict[EdgeId, list[Evidence]]
    sentences: dict[int, str]
    seq: int = 0  # ingest order, for the "first seen" tie-break
    facts: dict[FactId, list[FactEvidence]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (see the module docstring for the layout)."""
        return {
            "document": self.document,
            "content_hash": self.content_hash,
            "settings": self.settings,
            "nodes": [
                {
                    "node": key,
                    "mentions": n.mentions,
                    # [value, count] pairs in first-seen order (the tie-break needs it).
                    "texts": [[v, k] for v, k in n.texts.items()],
                    "labels": [[v, k] for v, k in n.labels.items()],
                    "kinds": [[v, k] for v, k in n.kinds.items()],
                }
                for key, n in self.nodes.items()
            ],
            "evidence": [
                {
                    "source": source,
                    "target": target,
                    "relation": relation,
                    "sentence_index": ev.sentence_index,
                    "source_start": ev.source_start,
                    "source_end": ev.source_end,
                    "target_start": ev.target_start,
                    "target_end": ev.target_end,
                    "score": ev.score,
                    "unit": ev.unit,
                }
                for (source, target, relation), items in self.edges.items()
                for ev in items
            ],
            "facts": [
                {"subject": subject, "object": obj, "predicate": predicate, **ev.fields()}
                for (subject, obj, predicate), items in self.facts.items()
                for ev in items
            ],
            "sentences": [[i, text] for i, text in sorted(self.sentences.items())],
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any], seq: int = 0) -> DocumentContribution:
        """Parse ``to_json`` data (evidence in any order; it is sorted here; no ``unit``: ""; no
        ``facts``: none)."""
        nodes = {
            str(n["node"]): NodeContribution(
                mentions=int(n["mentions"]),
                texts={str(v): int(k) for v, k in n["texts"]},
                labels={str(v): int(k) for v, k in n["labels"]},
                kinds={str(v): int(k) for v, k in n["kinds"]},
            )
            for n in item["nodes"]
        }
        document = str(item["document"])
        edges: dict[EdgeId, list[Evidence]] = {}
        for e in item["evidence"]:
            edges.setdefault((str(e["source"]), str(e["target"]), str(e["relation"])), []).append(
                Evidence(
                    document=document,
                    sentence_index=int(e["sentence_index"]),
                    source_start=int(e["source_start"]),
                    source_end=int(e["source_end"]),
                    target_start=int(e["target_start"]),
                    target_end=int(e["target_end"]),
                    score=float(e["score"]),
                    unit=str(e.get("unit", "")),
                )
            )
        facts: dict[FactId, list[FactEvidence]] = {}
        for f in item.get("facts", []):
            facts.setdefault((str(f["subject"]), str(f["object"]), str(f["predicate"])), []).append(
                FactEvidence(
                    document=document,
                    sentence_index=int(f["sentence_index"]),
                    subject_start=int(f["subject_start"]),
                    subject_end=int(f["subject_end"]),
                    object_start=int(f["object_start"]),
                    object_end=int(f["object_end"]),
                    predicate_start=int(f["predicate_start"]),
                    predicate_end=int(f["predicate_end"]),
                    probability=float(f["probability"]),
                    kind=str(f["kind"]),
                    arcs=tuple(ArcEvidence.from_json(a) for a in f["arcs"]),
                )
            )
        return cls(
            document=document,
            content_hash=str(item["content_hash"]),
            settings=dict(item.get("settings", {})),
            nodes=nodes,
            edges=_sorted_edges(edges),
            sentences={int(i): str(text) for i, text in item["sentences"]},
            seq=seq,
            facts=sorted_facts(facts),
        )


@dataclass
class Provenance:
    """The contributions of every document in a graph, in ingest order."""

    contributions: list[DocumentContribution] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"format": PROVENANCE_FORMAT, "contributions": [...]}``."""
        return {"format": PROVENANCE_FORMAT, "contributions": [c.to_json() for c in self.contributions]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Provenance:
        """Parse ``to_json`` data (format 3; 2 without facts; 1 without facts and units); ValueError for
        another format version."""
        if data.get("format") not in READABLE_PROVENANCE_FORMATS:
            raise ValueError(f"unsupported {PROVENANCE_KEY} format {data.get('format')!r}")
        return cls([DocumentContribution.from_json(item, seq) for seq, item in enumerate(data["contributions"])])


def _sorted_edges(edges: dict[EdgeId, list[Evidence]]) -> dict[EdgeId, list[Evidence]]:
    for items in edges.values():
        items.sort(key=Evidence.sort_key)
    return dict(sorted(edges.items()))


def sorted_facts(facts: dict[FactId, list[FactEvidence]]) -> dict[FactId, list[FactEvidence]]:
    """Facts sorted by fact id, each evidence list best first (``FactEvidence.sort_key``), in place."""
    for items in facts.values():
        items.sort(key=FactEvidence.sort_key)
    return dict(sorted(facts.items()))


def _fact_evidence(analysis: DocumentAnalysis, i: int) -> tuple[FactId, FactEvidence] | None:
    """Fact ``i`` of the analysis as (fact id, evidence), validated; None for a self-loop."""
    probability = analysis.checked_fact(i)
    fact = analysis.facts[i]
    doc = analysis.document
    if fact.kind not in FACT_KINDS:
        raise ValueError(f"document {doc.id!r}: fact {i} has kind {fact.kind!r} (expected one of {list(FACT_KINDS)})")
    subject, obj = analysis.spans[fact.subject], analysis.spans[fact.object]
    if subject.key == obj.key:
        return None  # a statement about a thing and itself relates nothing to anything
    arcs = []
    for arc in fact.arcs:
        if not isinstance(arc.relation, str) or not isinstance(arc.unit, str):
            raise ValueError(f"document {doc.id!r}: fact {i} has an arc whose relation or unit is not a string")
        arcs.append(
            ArcEvidence(
                relation=arc.relation,
                unit=arc.unit,
                probability=float(arc.probability),
                head_start=int(arc.head_start),
                head_end=int(arc.head_end),
                dependent_start=int(arc.dependent_start),
                dependent_end=int(arc.dependent_end),
                head=doc.text[arc.head_start : arc.head_end],
                dependent=doc.text[arc.dependent_start : arc.dependent_end],
            )
        )
    evidence = FactEvidence(
        document=doc.id,
        sentence_index=fact.sent_index,
        subject_start=subject.start_char,
        subject_end=subject.end_char,
        object_start=obj.start_char,
        object_end=obj.end_char,
        predicate_start=int(fact.predicate_start),
        predicate_end=int(fact.predicate_end),
        probability=probability,
        kind=fact.kind,
        arcs=tuple(arcs),
    )
    return (subject.key, obj.key, fact.predicate), evidence


def contribution_from_analysis(analysis: DocumentAnalysis) -> DocumentContribution:
    """One document's contribution: node tallies, deduplicated evidence, cited sentences.

    Rules: a relation whose two spans share a key (a self-loop) is dropped; the same (source key,
    target key, relation, sentence index) occurring more than once keeps only its best occurrence
    (``Evidence.sort_key``). Facts alike: a self-loop is dropped, and the same (subject key, object
    key, predicate, sentence index) keeps its best occurrence (``FactEvidence.sort_key``). Evidence
    from different sentences is never merged. Every fact is checked (``checked_fact``) first.

    Raises:
        ValueError: a span or sentence index out of range, a score that is not finite, or a fact
            with an empty predicate, a probability outside [0, 1] or an unknown kind.
    """
    doc = analysis.document
    nodes: dict[str, NodeContribution] = {}
    for span in analysis.spans:
        node = nodes.setdefault(span.key, NodeContribution())
        node.mentions += 1
        node.texts[span.text] = node.texts.get(span.text, 0) + 1
        node.labels[span.label] = node.labels.get(span.label, 0) + 1
        node.kinds[span.kind] = node.kinds.get(span.kind, 0) + 1

    best: dict[tuple[str, str, str, int], Evidence] = {}
    for i, rel in enumerate(analysis.relations):
        score = analysis.checked_score(i)
        src, tgt = analysis.spans[rel.source], analysis.spans[rel.target]
        if src.key == tgt.key:
            continue  # a span attending to another mention of itself relates nothing to anything
        evidence = Evidence(
            document=doc.id,
            sentence_index=rel.sent_index,
            source_start=src.start_char,
            source_end=src.end_char,
            target_start=tgt.start_char,
            target_end=tgt.end_char,
            score=score,
            unit=rel.unit,
        )
        dedupe_key = (src.key, tgt.key, rel.relation, rel.sent_index)
        kept = best.get(dedupe_key)
        if kept is None or evidence.sort_key() < kept.sort_key():
            best[dedupe_key] = evidence

    best_facts: dict[tuple[str, str, str, int], FactEvidence] = {}
    for i in range(len(analysis.facts)):
        found = _fact_evidence(analysis, i)
        if found is None:
            continue
        fact_id, fact_ev = found
        fact_dedupe = (*fact_id, fact_ev.sentence_index)
        kept_fact = best_facts.get(fact_dedupe)
        if kept_fact is None or fact_ev.sort_key() < kept_fact.sort_key():
            best_facts[fact_dedupe] = fact_ev

    edges: dict[EdgeId, list[Evidence]] = {}
    for (source, target, relation, _), evidence in best.items():
        edges.setdefault((source, target, relation), []).append(evidence)
    facts: dict[FactId, list[FactEvidence]] = {}
    for (subject, obj, predicate, _), fact_ev in best_facts.items():
        facts.setdefault((subject, obj, predicate), []).append(fact_ev)
    cited = sorted(
        {ev.sentence_index for items in edges.values() for ev in items}
        | {ev.sentence_index for fact_items in facts.values() for ev in fact_items}
    )
    return DocumentContribution(
        document=doc.id,
        content_hash=doc.content_hash,
        settings=dict(sorted(analysis.settings.items())),
        nodes=nodes,
        edges=_sorted_edges(edges),
        sentences={i: analysis.sentence_text(i) for i in cited},
        facts=sorted_facts(facts),
    )


# ── aggregates ───────────────────────────────────────────────────────────────────────────────────


@dataclass
class NodeAggregate:
    """A node's attributes over the contributions added so far (any order gives the same result)."""

    mentions: int = 0
    texts: Tally = field(default_factory=Tally)
    labels: Tally = field(default_factory=Tally)
    kinds: Tally = field(default_factory=Tally)
    documents: set[str] = field(default_factory=set)

    def add(self, node: NodeContribution, document: str, seq: int) -> None:
        """Add one document's contribution to this node; ``seq`` orders documents for the tie-break."""
        self.mentions += node.mentions
        first_seen = (seq, document)
        self.texts.add(node.texts, first_seen)
        self.labels.add(node.labels, first_seen)
        self.kinds.add(node.kinds, first_seen)
        self.documents.add(document)

    def attributes(self) -> dict[str, Any]:
        """``text``, ``label``, ``kind`` (most frequent, ties first seen), ``mentions``, ``documents``."""
        return {
            "text": self.texts.best(),
            "label": self.labels.best(),
            "kind": self.kinds.best(),
            "mentions": self.mentions,
            "documents": sorted(self.documents),
        }


@dataclass
class EdgeAggregate:
    """An edge's statistics over the evidence added so far (exact: any order gives the same result)."""

    count: int = 0
    score_sum: int = 0  # exact, in exact_score units
    score_max: float = -math.inf
    top: list[Evidence] = field(default_factory=list)  # the best max_evidence items, best first
    documents: set[str] = field(default_factory=set)
    best: Evidence | None = None  # the best item of all (kept even when max_evidence is 0)

    def add_scores(self, document: str, scores: Iterable[float]) -> None:
        """Add one document's scores for this edge (statistics only, no evidence items)."""
        values = [float(s) for s in scores]
        self.count += len(values)
        self.score_sum += sum(exact_score(s) for s in values)
        self.score_max = max([self.score_max, *values])
        self.documents.add(document)

    def add_best(self, evidence: Evidence) -> None:
        """Offer one evidence item (a document's best) as the edge's best of all."""
        if self.best is None or evidence.sort_key() < self.best.sort_key():
            self.best = evidence

    def add(self, document: str, evidence: Sequence[Evidence], max_evidence: int) -> None:
        """Add one document's evidence list (sorted best first) and keep the overall best items."""
        self.add_scores(document, (ev.score for ev in evidence))
        if evidence:
            self.add_best(evidence[0])
        # Lists are sorted best first, so each document can only offer its own best max_evidence.
        merged = self.top + list(evidence[:max_evidence])
        merged.sort(key=Evidence.sort_key)
        self.top = merged[:max_evidence]

    @property
    def score_mean(self) -> float:
        """The correctly rounded mean of all scores added."""
        return exact_mean(self.score_sum, self.count)

    @property
    def unit(self) -> str:
        """The unit of the best evidence item ("" for untyped subspaces, or when none was offered)."""
        return self.best.unit if self.best is not None else ""


def best_fact_kind(kinds: Mapping[str, int]) -> str:
    """The most frequent fact kind; ties go to the first in ``FACT_KINDS`` order (order-independent)."""
    if not kinds:
        raise ValueError("no fact kinds")
    rank = {kind: i for i, kind in enumerate(FACT_KINDS)}
    return min(kinds, key=lambda kind: (-kinds[kind], rank.get(kind, len(rank)), kind))


@dataclass
class FactAggregate:
    """A fact's statistics over the evidence added so far (exact: any order gives the same result)."""

    count: int = 0
    probability_sum: int = 0  # exact, in exact_score units
    probability_max: float = -math.inf
    kinds: dict[str, int] = field(default_factory=dict)  # kind -> evidence items
    top: list[FactEvidence] = field(default_factory=list)  # the best max_evidence items, best first
    documents: set[str] = field(default_factory=set)
    best: FactEvidence | None = None  # the best item of all (kept even when max_evidence is 0)

    def add_stats(self, document: str, probabilities: Iterable[float], kinds: Iterable[str]) -> None:
        """Add one document's probabilities and kinds for this fact (statistics only, no items)."""
        values = [float(p) for p in probabilities]
        self.count += len(values)
        self.probability_sum += sum(exact_score(p) for p in values)
        self.probability_max = max([self.probability_max, *values])
        for kind in kinds:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.documents.add(document)

    def add_best(self, evidence: FactEvidence) -> None:
        """Offer one evidence item (a document's best) as the fact's best of all."""
        if self.best is None or evidence.sort_key() < self.best.sort_key():
            self.best = evidence

    def add(self, document: str, evidence: Sequence[FactEvidence], max_evidence: int) -> None:
        """Add one document's evidence list (sorted best first) and keep the overall best items."""
        self.add_stats(document, (ev.probability for ev in evidence), (ev.kind for ev in evidence))
        if evidence:
            self.add_best(evidence[0])
        merged = self.top + list(evidence[:max_evidence])
        merged.sort(key=FactEvidence.sort_key)
        self.top = merged[:max_evidence]

    @property
    def probability_mean(self) -> float:
        """The correctly rounded mean of all probabilities added."""
        return exact_mean(self.probability_sum, self.count)

    @property
    def fact_kind(self) -> str:
        """The most frequent kind (``best_fact_kind``)."""
        return best_fact_kind(self.kinds)

    @property
    def units(self) -> list[str]:
        """The distinct units of the best item's arcs ([] when none was offered)."""
        return self.best.units if self.best is not None else []
