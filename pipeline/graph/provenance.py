"""The provenance format: what each document contributed to the graph, and the rules that aggregate it.

A ``DocumentContribution`` is everything one document version added: mentions per node (with
value counts in first-seen order), deduplicated evidence per (source, target, relation) edge, and
the sentences that evidence cites. A ``Provenance`` is the contributions in ingest order. Both the
in-memory ``KnowledgeGraph`` and the Neo4j store (``pipeline.store``) build node and edge attributes
from contributions with the rules below, so they agree bit for bit:

* ``contribution_from_analysis``: self-loops dropped; within one document the same (source key,
  target key, relation, sentence index) keeps only its best occurrence (``Evidence.sort_key``).
* ``exact_score`` / ``exact_mean``: score sums in exact integers, the mean correctly rounded, so
  the result never depends on the order documents arrive in.
* ``Tally``: most frequent value; ties go to the value seen first.
* ``NodeAggregate`` / ``EdgeAggregate``: node and edge attributes from any set of contributions.

* ``relation_label``: an edge's label: the human label if one is known, else the relation's own
  name for a typed relation (a UD name from ``DEPENDENCY_RELATIONS``), else "".

Relations are typed (``relation`` a UD name such as ``nsubj``, ``unit`` the typed unit behind the
evidence) or untyped subspaces (``relation`` a subspace id such as ``L2H8k12``, ``unit`` "").

JSON layout (``Provenance.to_json``, stored under ``PROVENANCE_KEY`` in exports)::

    {"format": 2, "contributions": [{"document", "content_hash", "settings",
      "nodes": [{"node", "mentions", "texts": [[value, count], ...], "labels": ..., "kinds": ...}],
      "evidence": [{"source", "target", "relation", "sentence_index", "source_start", "source_end",
                    "target_start", "target_end", "score", "unit"}],
      "sentences": [[index, text], ...]}]}

Format 1 (before typed relations) is the same without ``unit``; it is still read (``unit`` "").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.types import DEPENDENCY_RELATIONS, DocumentAnalysis

#: Version of the provenance block written into exports; bump when its layout changes.
PROVENANCE_FORMAT = 2
#: Formats ``Provenance.from_json`` reads (1: evidence without ``unit``).
READABLE_PROVENANCE_FORMATS = frozenset({1, 2})
#: Name of the top-level node-link key and of the GraphML graph attribute holding provenance.
PROVENANCE_KEY = "qkgraph_provenance"

EdgeId = tuple[str, str, str]  # (source node key, target node key, relation name or subspace id)

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
JSON_ATTRS = frozenset({"documents", "evidence", "relation_labels", "settings", PROVENANCE_KEY})


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
    edge id and each evidence list best first; ``sentences`` holds only the sentences cited.
    """

    document: str
    content_hash: str
    settings: dict[str, Any]
    nodes: dict[str, NodeContribution]
    edges: dict[EdgeId, list[Evidence]]
    sentences: dict[int, str]
    seq: int = 0  # ingest order, for the "first seen" tie-break

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
            "sentences": [[i, text] for i, text in sorted(self.sentences.items())],
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any], seq: int = 0) -> DocumentContribution:
        """Parse ``to_json`` data (evidence in any order; it is sorted here; no ``unit``: "")."""
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
        return cls(
            document=document,
            content_hash=str(item["content_hash"]),
            settings=dict(item.get("settings", {})),
            nodes=nodes,
            edges=_sorted_edges(edges),
            sentences={int(i): str(text) for i, text in item["sentences"]},
            seq=seq,
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
        """Parse ``to_json`` data (format 2, or 1 without units); ValueError for another format version."""
        if data.get("format") not in READABLE_PROVENANCE_FORMATS:
            raise ValueError(f"unsupported {PROVENANCE_KEY} format {data.get('format')!r}")
        return cls([DocumentContribution.from_json(item, seq) for seq, item in enumerate(data["contributions"])])


def _sorted_edges(edges: dict[EdgeId, list[Evidence]]) -> dict[EdgeId, list[Evidence]]:
    for items in edges.values():
        items.sort(key=Evidence.sort_key)
    return dict(sorted(edges.items()))


def contribution_from_analysis(analysis: DocumentAnalysis) -> DocumentContribution:
    """One document's contribution: node tallies, deduplicated evidence, cited sentences.

    Rules: a relation whose two spans share a key (a self-loop) is dropped; the same (source key,
    target key, relation, sentence index) occurring more than once keeps only its best occurrence
    (``Evidence.sort_key``). Evidence from different sentences is never merged.

    Raises:
        ValueError: a span or sentence index out of range, or a score that is not finite.
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

    edges: dict[EdgeId, list[Evidence]] = {}
    for (source, target, relation, _), evidence in best.items():
        edges.setdefault((source, target, relation), []).append(evidence)
    cited = sorted({ev.sentence_index for items in edges.values() for ev in items})
    return DocumentContribution(
        document=doc.id,
        content_hash=doc.content_hash,
        settings=dict(sorted(analysis.settings.items())),
        nodes=nodes,
        edges=_sorted_edges(edges),
        sentences={i: analysis.sentence_text(i) for i in cited},
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
