"""The knowledge graph: span nodes, typed attention relations between them, and where each came from.

Design
------
``KnowledgeGraph.g`` is a ``networkx.MultiDiGraph``. Node ids are ``Span.key``; an edge is
``(source key, target key, key=relation type id)``. Keying parallel edges by relation type means
there is exactly one edge per (source, relation, target) triple: when more evidence for the same
triple arrives (another sentence, another document) its statistics (count, mean, max, provenance)
aggregate on that edge instead of adding a duplicate edge, and ``g.edges(keys=True)`` yields the
typed triples directly.

Provenance and re-ingestion
---------------------------
Every ingested document's contribution (mentions per node, deduplicated evidence per edge, the
evidence sentences) is kept in ``KnowledgeGraph._contrib``. Node and edge attributes are
aggregates of those contributions, computed only with exact, order-independent operations (integer
counts, an exact integer score sum, max, a totally ordered top-k), so adding a document
incrementally gives bit-for-bit the same attributes as recomputing from scratch. Removing or
replacing a document recomputes the touched nodes and edges from the remaining contributions
rather than subtracting floats, so no rounding residue survives a replacement, and a node or edge
no document supports any more is deleted.

Rules
-----
* Dedupe within one document: if the same (source key, target key, relation, sentence index)
  occurs more than once in one analysis (e.g. a sentence mentions the same node twice), only the
  highest-scoring occurrence is kept (ties: the smallest source then target offsets). Evidence
  from different sentences or documents is never merged.
* Self-loops (source key == target key) are dropped: a span attending to another mention of the
  same thing says nothing about a relation between two things.
* Node ``text``/``label``/``kind``: the most frequent value over all mentions; ties go to the one
  seen first, documents taken in ingest order (a replaced document counts as ingested anew) and
  mentions in ``DocumentAnalysis.spans`` order.
* Edge ``evidence`` keeps the ``max_evidence`` best items (highest score; ties by document id,
  then source and target offsets, then sentence index); ``count``, ``score_mean`` and
  ``score_max`` use all evidence.

Exports are canonical (nodes sorted by key, edges by (source, target, relation), JSON with sorted
keys), so the same contributions always give byte-identical files. See docs/graph-schema.md for
every attribute.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from pipeline.errors import QkgraphError
from pipeline.types import DocumentAnalysis

AddResult = Literal["added", "unchanged", "replaced"]
EdgeId = tuple[str, str, str]  # (source node key, target node key, relation id)

#: Version of the provenance block written into exports; bump when its layout changes.
PROVENANCE_FORMAT = 1
#: Name of the top-level node-link key and of the GraphML graph attribute holding provenance.
PROVENANCE_KEY = "qkgraph_provenance"


class ProvenanceUnavailableError(QkgraphError):
    """The graph was loaded without per-document contributions, so documents cannot be changed."""


# ── internal records ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Evidence:
    """One deduplicated piece of evidence for an edge, from one sentence of one document."""

    document: str
    sentence_index: int
    source_start: int
    source_end: int
    target_start: int
    target_end: int
    score: float

    def sort_key(self) -> tuple[float, str, int, int, int, int, int]:
        """Best first: highest score, then document id, offsets, sentence (a total order)."""
        return (
            -self.score,
            self.document,
            self.source_start,
            self.source_end,
            self.target_start,
            self.target_end,
            self.sentence_index,
        )


@dataclass
class _NodeContribution:
    """What one document says about one node. Dicts keep first-seen order within the document."""

    mentions: int = 0
    texts: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class _Contribution:
    """Everything one document version added to the graph; the unit of removal and replacement."""

    document: str
    content_hash: str
    settings: dict[str, Any]
    nodes: dict[str, _NodeContribution]
    edges: dict[EdgeId, list[_Evidence]]  # each list sorted best first
    sentences: dict[int, str]  # only the sentences some evidence cites
    seq: int = 0  # ingest order, for the "first seen" tie-break


# A value's running tally in a node aggregate: [count, (document seq, position in document)].
_Tally = dict[str, list[Any]]


@dataclass
class _NodeAgg:
    mentions: int = 0
    texts: _Tally = field(default_factory=dict)
    labels: _Tally = field(default_factory=dict)
    kinds: _Tally = field(default_factory=dict)
    documents: set[str] = field(default_factory=set)


@dataclass
class _EdgeAgg:
    count: int = 0
    # Exact sum of the scores in units of 2**-1074 (see _exact): adding and recomputing agree.
    score_sum: int = 0
    score_max: float = -math.inf
    top: list[_Evidence] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)


# Every finite float is an integer multiple of 2**-1074 (the smallest subnormal), so scores
# scaled by 2**1074 are exact Python ints: their sums are exact and order-independent, and int
# true division (used for the mean) is correctly rounded. Much cheaper than fractions.Fraction.
_SCALE_BITS = 1074


def _exact(score: float) -> int:
    """The score as an exact integer number of 2**-1074 units."""
    numerator, denominator = score.as_integer_ratio()  # denominator is a power of two
    return numerator << (_SCALE_BITS - (denominator.bit_length() - 1))


def _tally_add(tally: _Tally, values: dict[str, int], seq: int) -> None:
    for position, (value, n) in enumerate(values.items()):
        entry = tally.get(value)
        if entry is None:
            tally[value] = [n, (seq, position)]
        else:
            # Contributions are applied in seq order, so the stored first-seen position stays valid.
            entry[0] += n


def _tally_best(tally: _Tally) -> str:
    """Most frequent value; ties -> first seen."""
    return min(tally.items(), key=lambda item: (-item[1][0], item[1][1]))[0]


def _json_dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, no NaN, UTF-8 text kept readable."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# ── the graph ────────────────────────────────────────────────────────────────────────────────────


class KnowledgeGraph:
    """A MultiDiGraph of span nodes and typed relation edges, with per-document provenance.

    Attributes:
        g: the graph. Node id = ``Span.key``; edge = (source key, target key, key=relation id).
            Graph attributes: ``documents`` {doc id: content hash}, ``relation_labels``
            {relation id: label}, ``settings`` (extractor settings of the last ingest),
            ``max_evidence``.
        max_evidence: evidence items kept per edge (the best ones; statistics use all).
    """

    def __init__(self, max_evidence: int = 5, relation_labels: dict[str, str] | None = None) -> None:
        if max_evidence < 0:
            raise ValueError(f"max_evidence must be >= 0, got {max_evidence}")
        self.max_evidence = max_evidence
        self.g: nx.MultiDiGraph = nx.MultiDiGraph()
        self._contrib: dict[str, _Contribution] = {}
        self._documents: dict[str, str] = {}
        self._nodes: dict[str, _NodeAgg] = {}
        self._edges: dict[EdgeId, _EdgeAgg] = {}
        self._next_seq = 0
        # False once loaded from an export that carries no contributions: documents then cannot
        # be replaced or removed exactly, and we refuse rather than guess.
        self._has_provenance = True
        self.g.graph["documents"] = {}
        self.g.graph["relation_labels"] = dict(sorted((relation_labels or {}).items()))
        self.g.graph["settings"] = {}
        self.g.graph["max_evidence"] = max_evidence

    # ── ingest ───────────────────────────────────────────────────────────────────────────────────

    @property
    def documents(self) -> dict[str, str]:
        """{document id: content hash} of every document in the graph (a copy)."""
        return dict(self._documents)

    @property
    def relation_labels(self) -> dict[str, str]:
        """{relation id: human label} known to the graph (a copy)."""
        return dict(self.g.graph["relation_labels"])

    def add_analysis(self, analysis: DocumentAnalysis) -> AddResult:
        """Add one document's analysis.

        Returns "unchanged" if this document id is already in the graph with the same content hash
        (nothing is touched), "replaced" if it was there with another hash (its old contribution is
        removed first), else "added".

        Raises:
            ValueError: the analysis breaks its contract (span or sentence index out of range, a
                score that is not a finite number); the graph is left untouched.
            ProvenanceUnavailableError: the graph was loaded without contributions and this would
                change it.
        """
        doc_id = analysis.document.id
        new_hash = analysis.document.content_hash
        old_hash = self._documents.get(doc_id)
        if old_hash == new_hash:
            return "unchanged"
        if not self._has_provenance:
            raise ProvenanceUnavailableError(
                f"cannot add or replace document {doc_id!r}: this graph was loaded from an export "
                "without per-document contributions (use node-link JSON, or GraphML written with "
                "include_provenance=True, or re-ingest from the documents)"
            )
        # Build (and validate) before touching anything, so a bad analysis leaves the graph as it was.
        contribution = self._build_contribution(analysis)
        result: AddResult = "added"
        if old_hash is not None:
            self._remove(doc_id)
            result = "replaced"
        self._apply(contribution)
        self.g.graph["settings"] = dict(sorted(analysis.settings.items()))
        return result

    def remove_document(self, doc_id: str) -> bool:
        """Remove a document and everything only it supported. Returns False if it was not there."""
        if doc_id not in self._documents:
            return False
        if not self._has_provenance:
            raise ProvenanceUnavailableError(
                f"cannot remove document {doc_id!r}: this graph was loaded without per-document "
                "contributions (use node-link JSON or GraphML written with include_provenance=True)"
            )
        self._remove(doc_id)
        return True

    def set_relation_labels(self, labels: dict[str, str]) -> None:
        """Merge human labels for relation ids (e.g. {"L2H8k12": "amod"}) and relabel the edges."""
        merged = {**self.g.graph["relation_labels"], **labels}
        self.g.graph["relation_labels"] = dict(sorted(merged.items()))
        for _, _, key, data in self.g.edges(keys=True, data=True):
            data["label"] = merged.get(key, "")

    def _build_contribution(self, analysis: DocumentAnalysis) -> _Contribution:
        doc = analysis.document

        nodes: dict[str, _NodeContribution] = {}
        for span in analysis.spans:
            node = nodes.setdefault(span.key, _NodeContribution())
            node.mentions += 1
            node.texts[span.text] = node.texts.get(span.text, 0) + 1
            node.labels[span.label] = node.labels.get(span.label, 0) + 1
            node.kinds[span.kind] = node.kinds.get(span.kind, 0) + 1

        best: dict[tuple[str, str, str, int], _Evidence] = {}
        for i, rel in enumerate(analysis.relations):
            score = analysis.checked_score(i)
            src, tgt = analysis.spans[rel.source], analysis.spans[rel.target]
            if src.key == tgt.key:
                continue  # self-loop: see module docstring
            evidence = _Evidence(
                document=doc.id,
                sentence_index=rel.sent_index,
                source_start=src.start_char,
                source_end=src.end_char,
                target_start=tgt.start_char,
                target_end=tgt.end_char,
                score=score,
            )
            dedupe_key = (src.key, tgt.key, rel.relation, rel.sent_index)
            kept = best.get(dedupe_key)
            if kept is None or evidence.sort_key() < kept.sort_key():
                best[dedupe_key] = evidence

        edges: dict[EdgeId, list[_Evidence]] = {}
        for (source, target, relation, _), evidence in best.items():
            edges.setdefault((source, target, relation), []).append(evidence)
        for items in edges.values():
            items.sort(key=_Evidence.sort_key)
        cited = sorted({ev.sentence_index for items in edges.values() for ev in items})
        return _Contribution(
            document=doc.id,
            content_hash=doc.content_hash,
            settings=dict(sorted(analysis.settings.items())),
            nodes=nodes,
            edges=dict(sorted(edges.items())),
            sentences={i: analysis.sentence_text(i) for i in cited},
        )

    # ── aggregation ──────────────────────────────────────────────────────────────────────────────

    def _apply(self, contribution: _Contribution) -> None:
        """Add a contribution incrementally (exact: equals a recompute, see module docstring)."""
        contribution.seq = self._next_seq
        self._next_seq += 1
        doc_id = contribution.document
        self._contrib[doc_id] = contribution
        self._documents[doc_id] = contribution.content_hash
        self._sync_documents()

        for key, node_c in contribution.nodes.items():
            agg = self._nodes.setdefault(key, _NodeAgg())
            self._node_agg_add(agg, node_c, contribution.seq, doc_id)
            self._write_node(key)
        for edge_id, evidence in contribution.edges.items():
            agg_e = self._edges.setdefault(edge_id, _EdgeAgg())
            self._edge_agg_add(agg_e, evidence, doc_id)
            self._write_edge(edge_id)

    def _remove(self, doc_id: str) -> None:
        """Drop a document's contribution and recompute every node and edge it touched."""
        contribution = self._contrib.pop(doc_id)
        del self._documents[doc_id]
        self._sync_documents()
        # Edges first: an edge's endpoints are always supported by the documents supporting the
        # edge, so no node is deleted while an edge still needs it.
        for edge_id in contribution.edges:
            agg_e = self._edges[edge_id]
            agg_e.documents.discard(doc_id)
            if not agg_e.documents:
                del self._edges[edge_id]
                self.g.remove_edge(*edge_id)
                continue
            rebuilt = _EdgeAgg()
            for other in self._supporting(agg_e.documents):
                self._edge_agg_add(rebuilt, other.edges[edge_id], other.document)
            self._edges[edge_id] = rebuilt
            self._write_edge(edge_id)
        for key in contribution.nodes:
            agg = self._nodes[key]
            agg.documents.discard(doc_id)
            if not agg.documents:
                del self._nodes[key]
                self.g.remove_node(key)
                continue
            rebuilt_n = _NodeAgg()
            for other in self._supporting(agg.documents):
                self._node_agg_add(rebuilt_n, other.nodes[key], other.seq, other.document)
            self._nodes[key] = rebuilt_n
            self._write_node(key)

    def _supporting(self, doc_ids: Iterable[str]) -> list[_Contribution]:
        """The contributions of these documents in ingest order (for the first-seen tie-break)."""
        return sorted((self._contrib[d] for d in doc_ids), key=lambda c: c.seq)

    @staticmethod
    def _node_agg_add(agg: _NodeAgg, node_c: _NodeContribution, seq: int, doc_id: str) -> None:
        agg.mentions += node_c.mentions
        _tally_add(agg.texts, node_c.texts, seq)
        _tally_add(agg.labels, node_c.labels, seq)
        _tally_add(agg.kinds, node_c.kinds, seq)
        agg.documents.add(doc_id)

    def _edge_agg_add(self, agg: _EdgeAgg, evidence: list[_Evidence], doc_id: str) -> None:
        agg.count += len(evidence)
        agg.score_sum += sum(_exact(ev.score) for ev in evidence)
        agg.score_max = max([agg.score_max, *(ev.score for ev in evidence)])
        # Lists are sorted best first, so each document can only offer its own best max_evidence.
        merged = agg.top + evidence[: self.max_evidence]
        merged.sort(key=_Evidence.sort_key)
        agg.top = merged[: self.max_evidence]
        agg.documents.add(doc_id)

    def _write_node(self, key: str) -> None:
        agg = self._nodes[key]
        attrs = {
            "text": _tally_best(agg.texts),
            "label": _tally_best(agg.labels),
            "kind": _tally_best(agg.kinds),
            "mentions": agg.mentions,
            "documents": sorted(agg.documents),
        }
        if key in self.g:
            self.g.nodes[key].clear()
            self.g.nodes[key].update(attrs)
        else:
            self.g.add_node(key, **attrs)

    def _write_edge(self, edge_id: EdgeId) -> None:
        source, target, relation = edge_id
        agg = self._edges[edge_id]
        attrs = {
            "relation": relation,
            "label": self.g.graph["relation_labels"].get(relation, ""),
            "score_max": agg.score_max,
            # Exact sum / count, correctly rounded: the mean does not depend on summation order.
            "score_mean": agg.score_sum / (agg.count << _SCALE_BITS),
            "count": agg.count,
            "documents": sorted(agg.documents),
            "evidence": [self._evidence_dict(ev) for ev in agg.top],
        }
        if self.g.has_edge(source, target, key=relation):
            data = self.g.edges[source, target, relation]
            data.clear()
            data.update(attrs)
        else:
            self.g.add_edge(source, target, key=relation, **attrs)

    def _evidence_dict(self, ev: _Evidence) -> dict[str, Any]:
        return {
            "document": ev.document,
            "sentence_index": ev.sentence_index,
            "source_start": ev.source_start,
            "source_end": ev.source_end,
            "target_start": ev.target_start,
            "target_end": ev.target_end,
            "score": ev.score,
            "sentence": self._contrib[ev.document].sentences[ev.sentence_index],
        }

    def _sync_documents(self) -> None:
        self.g.graph["documents"] = dict(sorted(self._documents.items()))

    # ── queries ──────────────────────────────────────────────────────────────────────────────────

    def summary(self) -> dict[str, int]:
        """Counts: documents, nodes, edges, relation types, mentions and evidence items."""
        return {
            "documents": len(self._documents),
            "nodes": self.g.number_of_nodes(),
            "edges": self.g.number_of_edges(),
            "relation_types": len({key for _, _, key in self.g.edges(keys=True)}),
            "mentions": sum(int(m) for _, m in self.g.nodes(data="mentions", default=0)),
            "evidence": sum(int(c) for _, _, c in self.g.edges(data="count", default=0)),
        }

    def triples(self) -> Iterator[tuple[str, str, str, float]]:
        """(source text, relation label or id, target text, score_max), strongest first.

        Ties are broken by the node keys and relation id, so the order is deterministic.
        """
        rows = []
        for source, target, key, data in self.g.edges(keys=True, data=True):
            rows.append(
                (
                    -float(data["score_max"]),
                    source,
                    target,
                    key,
                    (
                        str(self.g.nodes[source].get("text", source)),
                        str(data.get("label") or key),
                        str(self.g.nodes[target].get("text", target)),
                        float(data["score_max"]),
                    ),
                )
            )
        rows.sort(key=lambda row: row[:4])
        return iter([row[4] for row in rows])

    # ── export / import ──────────────────────────────────────────────────────────────────────────

    def _canonical(self) -> nx.MultiDiGraph:
        """A copy with nodes sorted by key and edges by (source, target, relation)."""
        canon = nx.MultiDiGraph()
        canon.graph.update(
            {
                "documents": dict(sorted(self.g.graph.get("documents", {}).items())),
                "relation_labels": dict(sorted(self.g.graph.get("relation_labels", {}).items())),
                "settings": dict(sorted(self.g.graph.get("settings", {}).items())),
                "max_evidence": self.max_evidence,
            }
        )
        for key in sorted(self.g.nodes):
            canon.add_node(key, **self.g.nodes[key])
        for source, target, key in sorted(self.g.edges(keys=True)):
            canon.add_edge(source, target, key=key, **self.g.edges[source, target, key])
        return canon

    def _provenance(self) -> dict[str, Any] | None:
        """The per-document contributions as plain JSON data (None if the graph has none)."""
        if not self._has_provenance:
            return None
        contributions = []
        for c in sorted(self._contrib.values(), key=lambda c: c.seq):
            contributions.append(
                {
                    "document": c.document,
                    "content_hash": c.content_hash,
                    "settings": c.settings,
                    "nodes": [
                        {
                            "node": key,
                            "mentions": n.mentions,
                            # [value, count] pairs in first-seen order (the tie-break needs it).
                            "texts": [[v, k] for v, k in n.texts.items()],
                            "labels": [[v, k] for v, k in n.labels.items()],
                            "kinds": [[v, k] for v, k in n.kinds.items()],
                        }
                        for key, n in c.nodes.items()
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
                        }
                        for (source, target, relation), items in c.edges.items()
                        for ev in items
                    ],
                    "sentences": [[i, text] for i, text in sorted(c.sentences.items())],
                }
            )
        return {"format": PROVENANCE_FORMAT, "contributions": contributions}

    def to_node_link(self, path: str | Path) -> Path:
        """Write node-link JSON (``networkx.node_link_data(g, edges="edges")``) with real lists.

        The file also holds the per-document contributions under the top-level key
        ``qkgraph_provenance``, so ``from_node_link`` restores a graph that can still replace and
        remove documents exactly. ``networkx.node_link_graph`` ignores that key.
        """
        path = Path(path)
        data = nx.node_link_data(self._canonical(), edges="edges")
        provenance = self._provenance()
        if provenance is not None:
            data[PROVENANCE_KEY] = provenance
        path.write_text(_json_dumps(data) + "\n", encoding="utf-8")
        return path

    def to_graphml(self, path: str | Path, include_provenance: bool = False) -> Path:
        """Write GraphML for graph tools (Gephi, yEd, Cytoscape) and ``networkx.read_graphml``.

        GraphML attributes can only hold scalars, so list- and dict-valued attributes
        (``documents``, ``evidence``, and the graph's ``documents``, ``relation_labels``,
        ``settings``) are written as JSON strings; ``from_graphml`` decodes them. Edge ids in the
        file are ``e0, e1, ...`` (unique, as tools expect; the relation type is the ``relation``
        attribute). With ``include_provenance`` the per-document contributions are stored as one
        JSON string in the graph attribute ``qkgraph_provenance`` (lossless, but large); without
        it a graph read back cannot replace or remove documents.
        """
        path = Path(path)
        canon = self._canonical()
        out = nx.MultiDiGraph()
        out.graph.update({k: v if _is_scalar(v) else _json_dumps(v) for k, v in canon.graph.items()})
        if include_provenance:
            provenance = self._provenance()
            if provenance is not None:
                out.graph[PROVENANCE_KEY] = _json_dumps(provenance)
        for key, data in canon.nodes(data=True):
            out.add_node(key, **{k: v if _is_scalar(v) else _json_dumps(v) for k, v in data.items()})
        for i, (source, target, data) in enumerate(canon.edges(data=True)):
            encoded = {k: v if _is_scalar(v) else _json_dumps(v) for k, v in data.items()}
            out.add_edge(source, target, key=f"e{i}", **encoded)
        nx.write_graphml(out, path)
        return path

    @classmethod
    def from_node_link(cls, path: str | Path) -> KnowledgeGraph:
        """Load a graph written by ``to_node_link``.

        With the provenance block present (always, for files this class wrote) the graph is
        rebuilt from the contributions and behaves exactly like the original. A node-link file
        without it loads as-is but cannot replace or remove documents.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        provenance = data.pop(PROVENANCE_KEY, None)
        graph = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
        return cls._restore(graph, provenance)

    @classmethod
    def from_graphml(cls, path: str | Path) -> KnowledgeGraph:
        """Load a graph written by ``to_graphml`` (JSON-string attributes are decoded).

        GraphML written without ``include_provenance`` keeps every node and edge attribute, the
        document hashes, relation labels and settings, but not the per-document contributions, so
        the loaded graph can be queried and exported but not changed (``add_analysis`` of a new or
        changed document and ``remove_document`` raise ProvenanceUnavailableError).
        """
        raw = nx.read_graphml(path, edge_key_type=str, force_multigraph=True)
        graph = nx.MultiDiGraph()
        for k, v in raw.graph.items():
            if k in ("node_default", "edge_default"):
                continue  # added by read_graphml, not ours
            graph.graph[k] = _decode_attr(k, v)
        provenance = graph.graph.pop(PROVENANCE_KEY, None)
        for key, attrs in raw.nodes(data=True):
            graph.add_node(key, **{k: _decode_attr(k, v) for k, v in attrs.items()})
        for source, target, attrs in raw.edges(data=True):
            decoded = {k: _decode_attr(k, v) for k, v in attrs.items()}
            graph.add_edge(source, target, key=decoded["relation"], **decoded)
        return cls._restore(graph, provenance)

    @classmethod
    def _restore(cls, graph: nx.MultiDiGraph, provenance: dict[str, Any] | None) -> KnowledgeGraph:
        max_evidence = int(graph.graph.get("max_evidence", 5))
        kg = cls(max_evidence=max_evidence, relation_labels=dict(graph.graph.get("relation_labels", {})))
        if provenance is not None:
            if provenance.get("format") != PROVENANCE_FORMAT:
                raise ValueError(f"unsupported {PROVENANCE_KEY} format {provenance.get('format')!r}")
            # Re-applying the contributions in their ingest order rebuilds every attribute exactly.
            for item in provenance["contributions"]:
                kg._apply(_contribution_from_json(item))
            kg.g.graph["settings"] = dict(sorted(graph.graph.get("settings", {}).items()))
            return kg
        kg._has_provenance = False
        kg.g = graph
        kg._documents = dict(graph.graph.get("documents", {}))
        graph.graph["max_evidence"] = max_evidence
        kg._sync_documents()
        graph.graph.setdefault("settings", {})
        return kg


# ── helpers for the file formats ─────────────────────────────────────────────────────────────────

# Attributes that to_graphml JSON-encodes (lists and dicts); everything else is a GraphML scalar.
_JSON_ATTRS = frozenset({"documents", "evidence", "relation_labels", "settings", PROVENANCE_KEY})


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _decode_attr(name: str, value: Any) -> Any:
    if name in _JSON_ATTRS and isinstance(value, str):
        return json.loads(value)
    return value


def _contribution_from_json(item: dict[str, Any]) -> _Contribution:
    nodes = {
        n["node"]: _NodeContribution(
            mentions=int(n["mentions"]),
            texts={str(v): int(k) for v, k in n["texts"]},
            labels={str(v): int(k) for v, k in n["labels"]},
            kinds={str(v): int(k) for v, k in n["kinds"]},
        )
        for n in item["nodes"]
    }
    edges: dict[EdgeId, list[_Evidence]] = {}
    for e in item["evidence"]:
        edges.setdefault((e["source"], e["target"], e["relation"]), []).append(
            _Evidence(
                document=item["document"],
                sentence_index=int(e["sentence_index"]),
                source_start=int(e["source_start"]),
                source_end=int(e["source_end"]),
                target_start=int(e["target_start"]),
                target_end=int(e["target_end"]),
                score=float(e["score"]),
            )
        )
    for items in edges.values():
        items.sort(key=_Evidence.sort_key)
    return _Contribution(
        document=item["document"],
        content_hash=item["content_hash"],
        settings=dict(item.get("settings", {})),
        nodes=nodes,
        edges=dict(sorted(edges.items())),
        sentences={int(i): str(text) for i, text in item["sentences"]},
    )
