"""The knowledge graph: span nodes, the relations and facts between them, and where each came from.

Design
------
``KnowledgeGraph.g`` is a ``networkx.MultiDiGraph``. Node ids are ``Span.key``; an edge is
``(source key, target key, key=relation)``, where the relation is a typed relation's UD name
(``nsubj``, ``obj``, ``nmod:poss``: source = the head's span, target = the dependent's) or, for
untyped subspaces, the subspace id (``L2H8k12``). Keying parallel edges by relation means
there is exactly one edge per (source, relation, target) triple: when more evidence for the same
triple arrives (another sentence, another document) its statistics (count, mean, max, provenance)
aggregate on that edge instead of adding a duplicate edge, and ``g.edges(keys=True)`` yields the
typed triples directly.

Facts (``pipeline.types.SpanFact``: ``subject -[predicate]-> object``, composed from typed arcs) are
a second, distinct kind of edge between the same span nodes: ``(subject key, object key,
key="fact:" + predicate)``. The prefix keeps the two kinds apart whatever the predicate (a predicate
"mark" or "case" never meets the relation ``mark``), and every edge says which kind it is in its
``kind`` attribute ("relation" or "fact"). There is exactly one fact edge per (subject, predicate,
object); its statistics aggregate like a relation edge's.

Provenance and re-ingestion
---------------------------
Every ingested document's contribution (mentions per node, deduplicated evidence per edge and per
fact, the evidence sentences; ``pipeline.graph.provenance.DocumentContribution``) is kept, and
``provenance()`` / ``from_provenance()`` hand them out and take them back (the Neo4j store uses
them). Node and edge attributes are aggregates of those contributions, computed only with exact,
order-independent operations (integer counts, an exact integer score sum, max, a totally ordered
top-k), so adding a document incrementally gives bit-for-bit the same attributes as recomputing from scratch. Removing or
replacing a document recomputes the touched nodes and edges from the remaining contributions
rather than subtracting floats, so no rounding residue survives a replacement, and a node or edge
no document supports any more is deleted.

Rules
-----
Implemented once, in ``pipeline.graph.provenance``, and shared with the Neo4j store:

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
  then source and target offsets, then sentence index, then unit); ``count``, ``score_mean`` and
  ``score_max`` use all evidence; ``unit`` is the unit of the best item of all.
* Edge ``label``: the relation's human label if ``relation_labels`` has one, else the relation name
  for a typed relation, else "".
* Facts: self-loops (subject key == object key) are dropped; within one document the same (subject
  key, object key, predicate, sentence index) keeps only its most probable occurrence (ties: document
  id, subject then object offsets, sentence, predicate offsets, kind, arcs: a total order). A fact
  edge's ``evidence`` keeps the ``max_evidence`` best items; ``count``, ``probability_mean`` (exact
  sum / count) and ``probability_max`` use all evidence; ``fact_kind`` is the most frequent kind over
  all evidence (ties: action, oblique, copula, possession); ``units`` are the distinct units of the
  best item's arcs. Removal and replacement recompute facts exactly like relation edges.

Exports are canonical (nodes sorted by key, edges by (source, target, key), JSON with sorted
keys), so the same contributions always give byte-identical files, and atomic (a temporary file
beside the target, fsynced, then renamed over it). See docs/graph-schema.md for
every attribute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from pipeline.errors import QkgraphError
from pipeline.graph.atomic import atomic_write, atomic_write_text
from pipeline.graph.provenance import (
    PROVENANCE_FORMAT,
    PROVENANCE_KEY,
    DocumentContribution,
    EdgeAggregate,
    EdgeId,
    Evidence,
    FactAggregate,
    FactEvidence,
    FactId,
    NodeAggregate,
    Provenance,
    canonical_json,
    contribution_from_analysis,
    decode_attribute,
    encode_attribute,
    fact_key,
    is_typed_relation,
    relation_label,
)
from pipeline.types import DocumentAnalysis

AddResult = Literal["added", "unchanged", "replaced"]

__all__ = ["PROVENANCE_FORMAT", "PROVENANCE_KEY", "AddResult", "KnowledgeGraph", "ProvenanceUnavailableError"]


class ProvenanceUnavailableError(QkgraphError):
    """The graph was loaded without per-document contributions, so documents cannot be changed."""


# ── the graph ────────────────────────────────────────────────────────────────────────────────────


class KnowledgeGraph:
    """A MultiDiGraph of span nodes, relation edges and fact edges, with per-document provenance.

    Attributes:
        g: the graph. Node id = ``Span.key``; relation edge = (source key, target key, key=relation:
            a UD name for typed relations, a subspace id for untyped ones; ``kind="relation"``);
            fact edge = (subject key, object key, key="fact:" + predicate; ``kind="fact"``).
            Graph attributes: ``documents`` {doc id: content hash}, ``relation_labels``
            {relation: label}, ``settings`` (extractor settings of the last ingest),
            ``max_evidence``.
        max_evidence: evidence items kept per edge (the best ones; statistics use all).
    """

    def __init__(self, max_evidence: int = 5, relation_labels: dict[str, str] | None = None) -> None:
        if max_evidence < 0:
            raise ValueError(f"max_evidence must be >= 0, got {max_evidence}")
        self.max_evidence = max_evidence
        self.g: nx.MultiDiGraph = nx.MultiDiGraph()
        self._contrib: dict[str, DocumentContribution] = {}
        self._documents: dict[str, str] = {}
        self._nodes: dict[str, NodeAggregate] = {}
        self._edges: dict[EdgeId, EdgeAggregate] = {}
        self._facts: dict[FactId, FactAggregate] = {}
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

    def holds(self, doc_id: str, content_hash: str, settings: dict[str, Any] | None = None) -> bool:
        """Whether the graph holds this version of a document: the same content hash and, given
        ``settings``, the same analysis settings (``DocumentAnalysis.settings``: extractor settings,
        analysis format, typed relation set). A graph loaded without contributions knows only hashes."""
        if self._documents.get(doc_id) != content_hash:
            return False
        stored = self._contrib.get(doc_id)
        return settings is None or stored is None or stored.settings == settings

    @property
    def relation_labels(self) -> dict[str, str]:
        """{relation id: human label} known to the graph (a copy)."""
        return dict(self.g.graph["relation_labels"])

    def add_analysis(self, analysis: DocumentAnalysis) -> AddResult:
        """Add one document's analysis.

        Returns "unchanged" if this document id is already in the graph with the same content hash
        and analysis settings (``holds``; nothing is touched), "replaced" if it was there with another
        hash or analysed otherwise (its old contribution is removed first), else "added".

        Raises:
            ValueError: the analysis breaks its contract (span or sentence index out of range, a
                score that is not a finite number); the graph is left untouched.
            ProvenanceUnavailableError: the graph was loaded without contributions and this would
                change it.
        """
        doc_id = analysis.document.id
        old_hash = self._documents.get(doc_id)
        if self.holds(doc_id, analysis.document.content_hash, analysis.settings):
            return "unchanged"
        if not self._has_provenance:
            raise ProvenanceUnavailableError(
                f"cannot add or replace document {doc_id!r}: this graph was loaded from an export "
                "without per-document contributions (use node-link JSON, or GraphML written with "
                "include_provenance=True, or re-ingest from the documents)"
            )
        # Build (and validate) before touching anything, so a bad analysis leaves the graph as it was.
        contribution = contribution_from_analysis(analysis)
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
        """Merge human labels for relations (e.g. {"L2H8k12": "amod"}) and relabel the edges."""
        merged = {**self.g.graph["relation_labels"], **labels}
        self.g.graph["relation_labels"] = dict(sorted(merged.items()))
        for _, _, key, data in self.g.edges(keys=True, data=True):
            if data.get("kind") != "fact":
                data["label"] = relation_label(key, merged)

    # ── aggregation ──────────────────────────────────────────────────────────────────────────────

    def _apply(self, contribution: DocumentContribution) -> None:
        """Add a contribution incrementally (exact: equals a recompute, see module docstring)."""
        contribution.seq = self._next_seq
        self._next_seq += 1
        doc_id = contribution.document
        self._contrib[doc_id] = contribution
        self._documents[doc_id] = contribution.content_hash
        self._sync_documents()

        for key, node_c in contribution.nodes.items():
            self._nodes.setdefault(key, NodeAggregate()).add(node_c, doc_id, contribution.seq)
            self._write_node(key)
        for edge_id, evidence in contribution.edges.items():
            self._edges.setdefault(edge_id, EdgeAggregate()).add(doc_id, evidence, self.max_evidence)
            self._write_edge(edge_id)
        for fact_id, fact_evidence in contribution.facts.items():
            self._facts.setdefault(fact_id, FactAggregate()).add(doc_id, fact_evidence, self.max_evidence)
            self._write_fact(fact_id)

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
            rebuilt = EdgeAggregate()
            for other in self._supporting(agg_e.documents):
                rebuilt.add(other.document, other.edges[edge_id], self.max_evidence)
            self._edges[edge_id] = rebuilt
            self._write_edge(edge_id)
        for fact_id in contribution.facts:
            agg_f = self._facts[fact_id]
            agg_f.documents.discard(doc_id)
            if not agg_f.documents:
                del self._facts[fact_id]
                self.g.remove_edge(fact_id[0], fact_id[1], key=fact_key(fact_id[2]))
                continue
            rebuilt_f = FactAggregate()
            for other in self._supporting(agg_f.documents):
                rebuilt_f.add(other.document, other.facts[fact_id], self.max_evidence)
            self._facts[fact_id] = rebuilt_f
            self._write_fact(fact_id)
        for key in contribution.nodes:
            agg = self._nodes[key]
            agg.documents.discard(doc_id)
            if not agg.documents:
                del self._nodes[key]
                self.g.remove_node(key)
                continue
            rebuilt_n = NodeAggregate()
            for other in self._supporting(agg.documents):
                rebuilt_n.add(other.nodes[key], other.document, other.seq)
            self._nodes[key] = rebuilt_n
            self._write_node(key)

    def _supporting(self, doc_ids: Iterable[str]) -> list[DocumentContribution]:
        """The contributions of these documents in ingest order (for the first-seen tie-break)."""
        return sorted((self._contrib[d] for d in doc_ids), key=lambda c: c.seq)

    def _write_node(self, key: str) -> None:
        attrs = self._nodes[key].attributes()
        if key in self.g:
            self.g.nodes[key].clear()
            self.g.nodes[key].update(attrs)
        else:
            self.g.add_node(key, **attrs)

    def _write_edge(self, edge_id: EdgeId) -> None:
        source, target, relation = edge_id
        agg = self._edges[edge_id]
        attrs = {
            "kind": "relation",
            "relation": relation,
            "label": relation_label(relation, self.g.graph["relation_labels"]),
            "unit": agg.unit,
            "score_max": agg.score_max,
            # Exact sum / count, correctly rounded: the mean does not depend on summation order.
            "score_mean": agg.score_mean,
            "count": agg.count,
            "documents": sorted(agg.documents),
            "evidence": [self._evidence_dict(ev) for ev in agg.top],
        }
        self._put_edge(source, target, relation, attrs)

    def _write_fact(self, fact_id: FactId) -> None:
        subject, obj, predicate = fact_id
        agg = self._facts[fact_id]
        key = fact_key(predicate)
        attrs = {
            "kind": "fact",
            "predicate": predicate,
            "fact_kind": agg.fact_kind,
            "units": agg.units,
            "probability_max": agg.probability_max,
            "probability_mean": agg.probability_mean,
            "count": agg.count,
            "documents": sorted(agg.documents),
            "evidence": [self._fact_evidence_dict(ev) for ev in agg.top],
        }
        self._put_edge(subject, obj, key, attrs)

    def _put_edge(self, source: str, target: str, key: str, attrs: dict[str, Any]) -> None:
        """Set edge (source, target, key) to exactly ``attrs``, adding it if absent."""
        if self.g.has_edge(source, target, key=key):
            data = self.g.edges[source, target, key]
            data.clear()
            data.update(attrs)
        else:
            self.g.add_edge(source, target, key=key, **attrs)

    def _fact_evidence_dict(self, ev: FactEvidence) -> dict[str, Any]:
        return {
            "document": ev.document,
            **ev.fields(),
            "sentence": self._contrib[ev.document].sentences[ev.sentence_index],
        }

    def _evidence_dict(self, ev: Evidence) -> dict[str, Any]:
        return {
            "document": ev.document,
            "sentence_index": ev.sentence_index,
            "source_start": ev.source_start,
            "source_end": ev.source_end,
            "target_start": ev.target_start,
            "target_end": ev.target_end,
            "score": ev.score,
            "unit": ev.unit,
            "sentence": self._contrib[ev.document].sentences[ev.sentence_index],
        }

    def _sync_documents(self) -> None:
        self.g.graph["documents"] = dict(sorted(self._documents.items()))

    # ── queries ──────────────────────────────────────────────────────────────────────────────────

    def summary(self) -> dict[str, int]:
        """Counts: documents, nodes, relation edges, relation types, mentions, relation evidence items,
        and apart from those fact edges, distinct predicates and fact evidence items."""
        relations = [(k, d) for _, _, k, d in self.g.edges(keys=True, data=True) if not _is_fact(d)]
        facts = [d for _, _, d in self.g.edges(data=True) if _is_fact(d)]
        return {
            "documents": len(self._documents),
            "nodes": self.g.number_of_nodes(),
            "edges": len(relations),
            "relation_types": len({key for key, _ in relations}),
            "mentions": sum(int(m) for _, m in self.g.nodes(data="mentions", default=0)),
            "evidence": sum(int(d.get("count", 0)) for _, d in relations),
            "facts": len(facts),
            "predicates": len({str(d["predicate"]) for d in facts}),
            "fact_evidence": sum(int(d.get("count", 0)) for d in facts),
        }

    def facts(self) -> Iterator[tuple[str, str, str, float]]:
        """(subject key, predicate, object key, probability_max) of every fact edge, most probable first
        (ties by subject, object, predicate, so the order is deterministic)."""
        rows = [
            (-float(data["probability_max"]), subject, obj, str(data["predicate"]))
            for subject, obj, data in self.g.edges(data=True)
            if _is_fact(data)
        ]
        rows.sort()
        return iter([(subject, predicate, obj, -negated) for negated, subject, obj, predicate in rows])

    def triples(self) -> Iterator[tuple[str, str, str, float]]:
        """(source text, relation, target text, score_max), strongest first.

        The relation is a typed relation's name (``nsubj``), an untyped one's label, or its subspace id
        when unlabelled. Ties are broken by the node keys and relation, so the order is deterministic.
        Relation edges only (``facts()`` lists the fact edges).
        """
        rows = []
        for source, target, key, data in self.g.edges(keys=True, data=True):
            if _is_fact(data):
                continue
            rows.append(
                (
                    -float(data["score_max"]),
                    source,
                    target,
                    key,
                    (
                        str(self.g.nodes[source].get("text", source)),
                        key if is_typed_relation(key) else str(data.get("label") or key),
                        str(self.g.nodes[target].get("text", target)),
                        float(data["score_max"]),
                    ),
                )
            )
        rows.sort(key=lambda row: row[:4])
        return iter([row[4] for row in rows])

    # ── export / import ──────────────────────────────────────────────────────────────────────────

    def canonical(self) -> nx.MultiDiGraph:
        """A copy with nodes sorted by key and edges by (source, target, key): relations and facts."""
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

    def provenance(self) -> Provenance | None:
        """The per-document contributions in ingest order (None if the graph was loaded without them).

        The records are the graph's own: treat them as read-only.
        """
        if not self._has_provenance:
            return None
        return Provenance(sorted(self._contrib.values(), key=lambda c: c.seq))

    def to_node_link(self, path: str | Path) -> Path:
        """Write node-link JSON (``networkx.node_link_data(g, edges="edges")``) with real lists.

        The file also holds the per-document contributions under the top-level key
        ``qkgraph_provenance``, so ``from_node_link`` restores a graph that can still replace and
        remove documents exactly. ``networkx.node_link_graph`` ignores that key.
        """
        path = Path(path)
        data = nx.node_link_data(self.canonical(), edges="edges")
        provenance = self.provenance()
        if provenance is not None:
            data[PROVENANCE_KEY] = provenance.to_json()
        return atomic_write_text(path, canonical_json(data) + "\n")

    def to_graphml(self, path: str | Path, include_provenance: bool = False) -> Path:
        """Write GraphML for graph tools (Gephi, yEd, Cytoscape) and ``networkx.read_graphml``.

        GraphML attributes can only hold scalars, so list- and dict-valued attributes
        (``documents``, ``evidence``, and the graph's ``documents``, ``relation_labels``,
        ``settings``) are written as JSON strings; ``from_graphml`` decodes them. Edge ids in the
        file are ``e0, e1, ...`` (unique, as tools expect; the relation type is the ``relation``
        attribute of a relation edge, the ``predicate`` that of a fact edge, ``kind`` tells them apart). With ``include_provenance`` the per-document contributions are stored as one
        JSON string in the graph attribute ``qkgraph_provenance`` (lossless, but large); without
        it a graph read back cannot replace or remove documents.
        """
        path = Path(path)
        canon = self.canonical()
        out = nx.MultiDiGraph()
        out.graph.update({k: encode_attribute(v) for k, v in canon.graph.items()})
        if include_provenance:
            provenance = self.provenance()
            if provenance is not None:
                out.graph[PROVENANCE_KEY] = canonical_json(provenance.to_json())
        for key, data in canon.nodes(data=True):
            out.add_node(key, **{k: encode_attribute(v) for k, v in data.items()})
        for i, (source, target, data) in enumerate(canon.edges(data=True)):
            out.add_edge(source, target, key=f"e{i}", **{k: encode_attribute(v) for k, v in data.items()})
        return atomic_write(path, lambda handle: nx.write_graphml(out, handle))

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
        return cls.from_networkx(graph, None if provenance is None else Provenance.from_json(provenance))

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
            graph.graph[k] = decode_attribute(k, v)
        provenance = graph.graph.pop(PROVENANCE_KEY, None)
        for key, attrs in raw.nodes(data=True):
            graph.add_node(key, **{k: decode_attribute(k, v) for k, v in attrs.items()})
        for source, target, attrs in raw.edges(data=True):
            decoded = {k: decode_attribute(k, v) for k, v in attrs.items()}
            key = fact_key(decoded["predicate"]) if _is_fact(decoded) else decoded["relation"]
            graph.add_edge(source, target, key=key, **decoded)
        return cls.from_networkx(graph, None if provenance is None else Provenance.from_json(provenance))

    @classmethod
    def from_provenance(
        cls,
        provenance: Provenance,
        relation_labels: dict[str, str] | None = None,
        max_evidence: int = 5,
        settings: dict[str, Any] | None = None,
    ) -> KnowledgeGraph:
        """Rebuild a graph from contributions (applied in their order): exactly the graph ingesting
        the same documents in that order gives. ``settings`` default to those of the last contribution.
        """
        kg = cls(max_evidence=max_evidence, relation_labels=relation_labels)
        for contribution in provenance.contributions:
            # A copy, so the caller's records (and their seq) stay untouched.
            kg._apply(replace(contribution))
        if settings is None:
            settings = provenance.contributions[-1].settings if provenance.contributions else {}
        kg.g.graph["settings"] = dict(sorted(settings.items()))
        return kg

    @classmethod
    def from_networkx(cls, graph: nx.MultiDiGraph, provenance: Provenance | None) -> KnowledgeGraph:
        """A graph from a MultiDiGraph read from an export, and its provenance if the export had it.

        With provenance the graph is rebuilt from the contributions (only the graph attributes
        ``max_evidence``, ``relation_labels`` and ``settings`` are taken from ``graph``) and can
        change documents; without it ``graph`` is used as it is and documents cannot be changed.
        """
        max_evidence = int(graph.graph.get("max_evidence", 5))
        relation_labels = dict(graph.graph.get("relation_labels", {}))
        if provenance is not None:
            return cls.from_provenance(provenance, relation_labels, max_evidence, dict(graph.graph.get("settings", {})))
        kg = cls(max_evidence=max_evidence, relation_labels=relation_labels)
        kg._has_provenance = False
        kg.g = graph
        kg._documents = dict(graph.graph.get("documents", {}))
        graph.graph["max_evidence"] = max_evidence
        kg._sync_documents()
        graph.graph.setdefault("settings", {})
        return kg


def _is_fact(data: dict[str, Any]) -> bool:
    """True for a fact edge's attributes (``kind == "fact"``); relation edges of exports written
    before facts have no ``kind`` at all."""
    return data.get("kind") == "fact"
