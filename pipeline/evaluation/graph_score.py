"""Scoring the graph itself against gold dependency trees: is an edge occurrence a gold arc?

The unit evaluation (``pipeline.evaluation.run``) scores word pairs; this module scores what
``qkgraph ingest`` wrote: every edge occurrence in the graph's provenance (one per document,
sentence, source mention and target mention; all of them, not only the ``max_evidence`` best kept
on the edge) is mapped to the gold words its two mentions overlap and judged:

* **labelled-correct**: some gold arc of the edge's relation links a word of one mention and a word
  of the other, in either direction; **direction-correct** (of those): the head is in the source
  mention. The relation of an edge is its key for typed graphs (a UD name in
  ``DEPENDENCY_RELATIONS``) and, for untyped graphs (``--relation-types subspaces``), the first
  word of its ``relation_labels`` entry ("amod (0.81)" -> amod). An unlabelled subspace has
  relation None: its occurrences are labelled-wrong and are reported on their own row.
* **unlabelled-correct**: some gold arc (punct excluded) links the two mentions.
* **recall** of a relation: of its *linkable* gold arcs (dependent and head inside two different
  mentions of one spaCy sentence with different node keys, which is what an edge can connect),
  the share some labelled-correct occurrence hits.

Gold words are the CoNLL-U syntactic words with character offsets into the document text exactly
as ``qkgraph ingest`` builds it (``pipeline.text.sources``: sentence texts joined by one space,
XML-illegal characters replaced); a word belongs to a mention when their character spans overlap.
Each graph document must be in the gold file with the same content hash, or scoring refuses.

Mentions: the graph keeps only the mentions evidence cites, so the linkable arcs need the others;
by default they are derived again with spaCy from the settings recorded in the graph (the same
``document_spans`` the ingest ran), and every cited mention is checked to be among them
(``GraphScore.cited_not_rederived``; cited mentions are always added). ``mentions=`` passes them
instead. Spans of kind ``pronoun`` (typed graphs keep pronoun nodes) are mentions like any other;
occurrences with a pronoun end are also reported separately (``with_pronoun``), since a pronoun
subject is the easiest nsubj there is.

The held-out part (odd-numbered documents) of a CoNLL-U file, numbered as ``corpus.build_corpus``
numbers them, is written by ``split_conllu`` so the real ingest can read it.
"""

from __future__ import annotations

import bisect
import inspect
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.evaluation.corpus import HELDOUT, SELECT, _take_sentences
from pipeline.graph import KnowledgeGraph
from pipeline.graph.provenance import DocumentContribution
from pipeline.text.conllu import ConlluDocument, read_conllu_documents
from pipeline.text.sources import xml_safe
from pipeline.types import DEPENDENCY_RELATIONS, Span, content_hash

__all__ = [
    "BAR_MIN_OCCURRENCES",
    "BAR_MIN_PRECISION",
    "BAR_MIN_RATE",
    "ConlluPart",
    "GraphScore",
    "RelationScore",
    "edge_relation",
    "rederive_mentions",
    "score_graph",
    "split_conllu",
]

BAR_MIN_PRECISION = 0.75
"""Issue 11's bar: labelled precision over all occurrences, and for every relation with enough of them."""
BAR_MIN_OCCURRENCES = 50
"""A relation with at least this many occurrences must meet ``BAR_MIN_PRECISION`` on its own."""
BAR_MIN_RATE = {"nsubj": 150.0, "obj": 150.0}
"""Occurrences per 2,000 sentences the bar asks of these relations."""
PER_SENTENCES = 2000
SKIPPED_DEPREL = "punct"
_PARTS = {"select": SELECT, "heldout": HELDOUT}


# ── the split as a file ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ConlluPart:
    """What ``split_conllu`` wrote: the path, the document ids (in order) and the sentence count."""

    path: Path
    documents: list[str]
    n_sentences: int


def _sentence_blocks(path: Path) -> list[list[str]]:
    """The raw lines of each sentence (its comments first), in file order; comment-only blocks
    carry over to the next sentence, as the reader does."""
    blocks: list[list[str]] = []
    current: list[str] = []
    has_tokens = False
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle):
            line = raw.rstrip("\r\n")
            if number == 0:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                if has_tokens:
                    blocks.append(current)
                    current, has_tokens = [], False
                continue
            current.append(line)
            has_tokens = has_tokens or not line.startswith("#")
    if has_tokens:
        blocks.append(current)
    return blocks


def split_conllu(
    conllu_path: str | Path, part: str | int, out_path: str | Path, max_sentences: int | None = None
) -> ConlluPart:
    """Write one part of a CoNLL-U file as a CoNLL-U file, lines unchanged.

    Documents are numbered in file order as ``corpus.build_corpus`` numbers them: even-numbered
    (0, 2, ...) are the selection part (``part="select"``), odd-numbered the held-out part
    (``part="heldout"``). ``max_sentences`` keeps the first N sentences of the part (whole documents
    until the cut, the last one cut at a sentence). A document's first sentence keeps its
    ``# newdoc id`` comment (one is added if the file had none, so the id stays the same).
    """
    conllu_path, out_path = Path(conllu_path), Path(out_path)
    split = _PARTS[part] if isinstance(part, str) else int(part)
    if split not in (SELECT, HELDOUT):
        raise ValueError(f"part must be 'select' or 'heldout', got {part!r}")
    documents = list(read_conllu_documents(conllu_path))
    blocks = _sentence_blocks(conllu_path)
    n_parsed = sum(len(d.sentences) for d in documents)
    if len(blocks) != n_parsed:
        raise ValueError(f"{conllu_path}: {len(blocks)} sentence blocks but {n_parsed} sentences parsed")
    first_block: list[int] = []
    at = 0
    for d in documents:
        first_block.append(at)
        at += len(d.sentences)
    chosen = [(k, d) for k, d in enumerate(documents) if k % 2 == split]
    kept = _take_sentences([d for _, d in chosen], max_sentences)
    lines: list[str] = []
    n_sentences = 0
    for (k, _), doc in zip(chosen, kept, strict=False):
        for s, sentence in enumerate(doc.sentences):
            block = blocks[first_block[k] + s]
            if s == 0 and sentence.newdoc_id is None:
                lines.append(f"# newdoc id = {doc.id}")
            lines.extend(block)
            lines.append("")
            n_sentences += 1
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(lines) + "\n" if lines else "", encoding="utf-8")
    return ConlluPart(out_path, [d.id for d in kept], n_sentences)


# ── gold words and arcs ──────────────────────────────────────────────────────────────────────────


@dataclass
class _GoldDocument:
    """One gold document: its text as the ingest builds it, its words and arcs (document offsets)."""

    id: str
    text: str
    n_sentences: int
    starts: list[int]  # words with a non-empty span, in text order
    ends: list[int]
    arcs: dict[tuple[int, int], list[tuple[str, int, int]]]  # (min, max) word -> [(deprel, dep, head)]
    arc_list: list[tuple[str, int, int]]

    def words_in(self, start: int, end: int) -> tuple[int, ...]:
        """Indices of the words whose character span overlaps [start, end)."""
        first = bisect.bisect_right(self.ends, start)
        out = []
        for w in range(first, len(self.starts)):
            if self.starts[w] >= end:
                break
            if self.ends[w] > start:
                out.append(w)
        return tuple(out)


def _gold_document(doc: ConlluDocument) -> _GoldDocument:
    starts: list[int] = []
    ends: list[int] = []
    arcs: dict[tuple[int, int], list[tuple[str, int, int]]] = defaultdict(list)
    arc_list: list[tuple[str, int, int]] = []
    for (offset, _), sentence in zip(doc.sentence_offsets(), doc.sentences, strict=True):
        index: dict[int, int] = {}
        for t in sentence.tokens:
            if t.end_char > t.start_char:  # an unaligned word overlaps nothing
                index[t.id] = len(starts)
                starts.append(offset + t.start_char)
                ends.append(offset + t.end_char)
        for t in sentence.tokens:
            if t.deprel == SKIPPED_DEPREL or t.head == 0 or t.id not in index or t.head not in index:
                continue
            dep, head = index[t.id], index[t.head]
            arc = (t.deprel, dep, head)
            arcs[(min(dep, head), max(dep, head))].append(arc)
            arc_list.append(arc)
    text, _ = xml_safe(doc.text)
    return _GoldDocument(xml_safe(doc.id)[0], text, len(doc.sentences), starts, ends, dict(arcs), arc_list)


def _read_gold(conllu_path: str | Path) -> tuple[dict[str, _GoldDocument], int]:
    """Gold documents by id (the first of a repeated id, as the ingest keeps), and how many repeated."""
    out: dict[str, _GoldDocument] = {}
    repeated = 0
    for doc in read_conllu_documents(conllu_path):
        gold = _gold_document(doc)
        if gold.id in out:
            repeated += 1
            continue
        out[gold.id] = gold
    return out, repeated


# ── the scores ───────────────────────────────────────────────────────────────────────────────────


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class RelationScore:
    """Counts for one relation (or for all of them, or for a subset of occurrences).

    Attributes:
        relation: the UD name; None for unlabelled subspaces; "all" for the overall row.
        occurrences: edge occurrences (provenance evidence items).
        labelled: occurrences with a gold arc of the relation between their mentions (either way).
        directed: labelled ones whose gold head lies in the source mention.
        unlabelled: occurrences with any gold arc (punct excluded) between their mentions.
        linkable: gold arcs of the relation that link two mentions an edge could connect.
        recalled: linkable arcs hit by a labelled-correct occurrence of the relation.
    """

    relation: str | None
    occurrences: int = 0
    labelled: int = 0
    directed: int = 0
    unlabelled: int = 0
    linkable: int = 0
    recalled: int = 0

    @property
    def labelled_precision(self) -> float | None:
        return _ratio(self.labelled, self.occurrences)

    @property
    def unlabelled_precision(self) -> float | None:
        return _ratio(self.unlabelled, self.occurrences)

    @property
    def direction_accuracy(self) -> float | None:
        return _ratio(self.directed, self.labelled)

    @property
    def recall(self) -> float | None:
        return _ratio(self.recalled, self.linkable)

    def rate(self, n_sentences: int) -> float | None:
        """Occurrences per 2,000 sentences."""
        return self.occurrences * PER_SENTENCES / n_sentences if n_sentences else None

    def to_json(self, n_sentences: int) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "occurrences": self.occurrences,
            "labelled": self.labelled,
            "directed": self.directed,
            "unlabelled": self.unlabelled,
            "linkable": self.linkable,
            "recalled": self.recalled,
            "labelled_precision": self.labelled_precision,
            "unlabelled_precision": self.unlabelled_precision,
            "direction_accuracy": self.direction_accuracy,
            "recall": self.recall,
            "per_2000_sentences": self.rate(n_sentences),
        }


@dataclass
class GraphScore:
    """The graph against the gold trees (see the module docstring for the measures).

    Attributes:
        mode: "typed" (every edge key a UD name), "subspaces" (none is), "mixed", or "empty".
        relations: per relation name, every relation of ``DEPENDENCY_RELATIONS`` and any other
            name an edge carries; ``unnamed`` holds the occurrences of unlabelled subspaces.
        overall: every occurrence; its recall is over the linkable arcs of ``DEPENDENCY_RELATIONS``.
        unlabelled_linkable / unlabelled_recalled: linkable gold arcs of any relation (punct
            excluded) and those hit by an unlabelled-correct occurrence.
        with_pronoun / without_pronoun: occurrences with / without a mention of kind "pronoun".
        documents, sentences, gold_words: what was scored (graph documents, their gold sentences).
        gold_documents_not_in_graph: gold documents the graph lacks (skipped or failed at ingest).
        unmapped_occurrences: occurrences with a mention that overlaps no gold word (should be 0).
        mentions_source: "spacy" (derived again) or "given".
        mentions: mentions used for the linkable arcs; cited_not_rederived: cited mentions spaCy did
            not give again (added anyway; should be 0).
        hits_not_linkable: arcs hit that are not linkable (a consistency check; 0).
    """

    mode: str
    relations: dict[str, RelationScore]
    unnamed: RelationScore
    overall: RelationScore
    unlabelled_linkable: int
    unlabelled_recalled: int
    with_pronoun: RelationScore
    without_pronoun: RelationScore
    documents: int
    sentences: int
    gold_words: int
    gold_documents_not_in_graph: int
    unmapped_occurrences: int
    mentions_source: str
    mentions: int
    cited_not_rederived: int
    hits_not_linkable: int
    repeated_gold_ids: int = 0
    source: str = ""
    outcomes: list[tuple[str | None, float, bool]] = field(default_factory=list, repr=False)
    """Every occurrence as (relation, score, labelled-correct): what span calibration is fitted on."""

    @property
    def unlabelled_recall(self) -> float | None:
        return _ratio(self.unlabelled_recalled, self.unlabelled_linkable)

    def rows(self) -> list[RelationScore]:
        """Relations with occurrences or linkable arcs (most occurrences first), then unnamed, then all."""
        named = sorted(
            (r for r in self.relations.values() if r.occurrences or r.linkable),
            key=lambda r: (-r.occurrences, -r.linkable, str(r.relation)),
        )
        return [*named, *([self.unnamed] if self.unnamed.occurrences else []), self.overall]

    def bar(
        self,
        min_precision: float = BAR_MIN_PRECISION,
        min_occurrences: int = BAR_MIN_OCCURRENCES,
        min_rate: Mapping[str, float] = BAR_MIN_RATE,
    ) -> dict[str, Any]:
        """Issue 11's bar: labelled precision >= 0.75 over all occurrences and for every named
        relation with >= 50 of them (unlabelled subspaces count in the overall figure), and
        >= 150 nsubj and >= 150 obj occurrences per 2,000 sentences.

        Returns {"met": bool, "checks": [{"check", "value", "target", "met"}]}.
        """
        checks: list[dict[str, Any]] = []

        def add(name: str, value: float | None, target: float) -> None:
            checks.append(
                {"check": name, "value": value, "target": target, "met": value is not None and value >= target}
            )

        add("labelled precision, all occurrences", self.overall.labelled_precision, min_precision)
        for r in self.rows()[:-1]:
            if r.relation is not None and r.occurrences >= min_occurrences:
                add(
                    f"labelled precision, {r.relation} ({r.occurrences} occurrences)",
                    r.labelled_precision,
                    min_precision,
                )
        for name, target in min_rate.items():
            rel = self.relations.get(name, RelationScore(name))
            add(f"{name} occurrences per {PER_SENTENCES:,} sentences", rel.rate(self.sentences), target)
        return {"met": all(c["met"] for c in checks), "checks": checks}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "mode": self.mode,
            "documents": self.documents,
            "sentences": self.sentences,
            "gold_words": self.gold_words,
            "gold_documents_not_in_graph": self.gold_documents_not_in_graph,
            "repeated_gold_ids": self.repeated_gold_ids,
            "unmapped_occurrences": self.unmapped_occurrences,
            "mentions_source": self.mentions_source,
            "mentions": self.mentions,
            "cited_not_rederived": self.cited_not_rederived,
            "hits_not_linkable": self.hits_not_linkable,
            "overall": self.overall.to_json(self.sentences),
            "unlabelled_linkable": self.unlabelled_linkable,
            "unlabelled_recalled": self.unlabelled_recalled,
            "unlabelled_recall": self.unlabelled_recall,
            "unnamed": self.unnamed.to_json(self.sentences),
            "relations": {k: v.to_json(self.sentences) for k, v in sorted(self.relations.items())},
            "with_pronoun": self.with_pronoun.to_json(self.sentences),
            "without_pronoun": self.without_pronoun.to_json(self.sentences),
            "bar": self.bar(),
        }

    def to_markdown(self) -> str:
        """The per-relation table and the notes under it."""

        def f(x: float | None) -> str:
            return "—" if x is None else f"{x:.3f}"

        out = [
            "| relation | occurrences | per 2,000 sent. | labelled P | unlabelled P | direction | linkable | recall |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows():
            name = "(unlabelled subspace)" if r.relation is None else r.relation
            if r is self.overall:
                name = "**all**"
            rate = r.rate(self.sentences)
            out.append(
                f"| {name} | {r.occurrences:,} | {'—' if rate is None else f'{rate:.0f}'} | {f(r.labelled_precision)} "
                f"| {f(r.unlabelled_precision)} | {f(r.direction_accuracy)} | {r.linkable:,} | {f(r.recall)} |"
            )
        p, q = self.with_pronoun, self.without_pronoun
        out += [
            "",
            f"{self.mode} graph; {self.documents} documents, {self.sentences:,} gold sentences, "
            f"{self.gold_words:,} gold words; mentions {self.mentions_source} ({self.mentions:,}).",
            f"Unlabelled recall (any relation, punct excluded): {f(self.unlabelled_recall)} "
            f"({self.unlabelled_recalled:,} of {self.unlabelled_linkable:,} linkable arcs).",
            f"Occurrences with a pronoun end: {p.occurrences:,} (labelled P {f(p.labelled_precision)}); "
            f"without: {q.occurrences:,} (labelled P {f(q.labelled_precision)}).",
            f"Checks: unmapped occurrences {self.unmapped_occurrences}, cited mentions not derived again "
            f"{self.cited_not_rederived}, hits not linkable {self.hits_not_linkable}, gold documents not in "
            f"the graph {self.gold_documents_not_in_graph}.",
        ]
        return "\n".join(out)


# ── relations of edges ───────────────────────────────────────────────────────────────────────────


def edge_relation(relation_id: str, relation_labels: Mapping[str, str]) -> str | None:
    """The UD relation an edge key stands for: the key itself for a typed edge; for a subspace id,
    the first word of its label ("amod (0.81)" -> "amod"); None for an unlabelled subspace."""
    if relation_id in DEPENDENCY_RELATIONS:
        return relation_id
    label = (relation_labels.get(relation_id) or "").strip()
    return label.split()[0] if label else None


def _mode(relation_ids: Iterable[str]) -> str:
    kinds = {r in DEPENDENCY_RELATIONS for r in relation_ids}
    if not kinds:
        return "empty"
    if kinds == {True}:
        return "typed"
    return "subspaces" if kinds == {False} else "mixed"


# ── mentions ─────────────────────────────────────────────────────────────────────────────────────


def _span_options(settings: Mapping[str, Any]) -> Any:
    """The ``SpanOptions`` an ingest ran with, from the settings it recorded (fields it did not
    record keep their defaults; a tuple field is recorded as a comma-separated string)."""
    from pipeline.text.spans import SpanOptions

    kwargs: dict[str, Any] = {}
    defaults = SpanOptions()
    for f in fields(SpanOptions):
        if f.name not in settings:
            continue
        value = settings[f.name]
        if isinstance(getattr(defaults, f.name), tuple) and isinstance(value, str):
            value = tuple(v for v in value.split(",") if v)
        kwargs[f.name] = value
    return SpanOptions(**kwargs)


def rederive_mentions(contributions: Sequence[DocumentContribution], texts: Mapping[str, str]) -> dict[str, list[Span]]:
    """Every mention of each document, derived again with spaCy exactly as the ingest did
    (``document_spans`` with the spaCy model and span options in the document's settings)."""
    from pipeline.text.defaults import DEFAULT_SPACY
    from pipeline.text.nlp import load_spacy
    from pipeline.text.sources import MAX_DOCUMENT_CHARS
    from pipeline.text.spans import document_spans

    groups: dict[str, list[DocumentContribution]] = defaultdict(list)
    for c in contributions:
        groups[json.dumps(c.settings, sort_keys=True, default=str)].append(c)
    out: dict[str, list[Span]] = {}
    for members in groups.values():
        settings = members[0].settings
        nlp = load_spacy(str(settings.get("spacy_model", DEFAULT_SPACY)))
        nlp.max_length = max(nlp.max_length, MAX_DOCUMENT_CHARS + 1)
        options = _span_options(settings)
        # Pronoun nodes are keyed by document, so newer versions of document_spans take its id.
        takes_id = "doc_id" in inspect.signature(document_spans).parameters
        docs = nlp.pipe((texts[c.document] for c in members), batch_size=16)
        for c, doc in zip(members, docs, strict=True):
            extra = {"doc_id": c.document} if takes_id else {}
            out[c.document] = document_spans(doc, options, **extra)[1]
    return out


# ── scoring ──────────────────────────────────────────────────────────────────────────────────────


@dataclass
class _Mention:
    key: str
    kind: str
    sent: int
    words: tuple[int, ...]


@dataclass
class _Tally:
    """Running counts while scoring."""

    relations: dict[str, RelationScore] = field(default_factory=dict)
    unnamed: RelationScore = field(default_factory=lambda: RelationScore(None))
    overall: RelationScore = field(default_factory=lambda: RelationScore("all"))
    with_pronoun: RelationScore = field(default_factory=lambda: RelationScore("with pronoun"))
    without_pronoun: RelationScore = field(default_factory=lambda: RelationScore("without pronoun"))

    def row(self, relation: str | None) -> RelationScore:
        if relation is None:
            return self.unnamed
        return self.relations.setdefault(relation, RelationScore(relation))


def _top_kind(kinds: Mapping[str, int]) -> str:
    return max(kinds.items(), key=lambda kv: kv[1])[0] if kinds else ""


def score_graph(
    graph: KnowledgeGraph | str | Path,
    conllu_path: str | Path,
    mentions: Mapping[str, Sequence[Span]] | None = None,
    relation_labels: Mapping[str, str] | None = None,
) -> GraphScore:
    """Score every edge occurrence of ``graph`` (a KnowledgeGraph or a node-link JSON path it wrote)
    against the gold trees of ``conllu_path`` (the file, or the part of it, that was ingested).

    ``mentions``: every span mention per document id (default: derived again with spaCy, see the
    module docstring). ``relation_labels``: the labels that name untyped subspaces (default: the
    graph's own; passing a label artifact's scores what its labels would claim). Raises ValueError when the graph has no provenance, or a graph document is
    not in the gold file or has another text there.
    """
    kg = graph if isinstance(graph, KnowledgeGraph) else KnowledgeGraph.from_node_link(graph)
    provenance = kg.provenance()
    if provenance is None:
        raise ValueError("the graph carries no per-document provenance: score a node-link JSON that qkgraph wrote")
    gold, repeated = _read_gold(conllu_path)
    contributions = provenance.contributions
    missing = [c.document for c in contributions if c.document not in gold]
    if missing:
        raise ValueError(f"{len(missing)} graph document(s) not in {conllu_path}: {missing[:3]}")
    changed = [c.document for c in contributions if content_hash(gold[c.document].text) != c.content_hash]
    if changed:
        raise ValueError(
            f"{len(changed)} graph document(s) have another text in {conllu_path} than in the graph: {changed[:3]}"
        )
    labels = kg.relation_labels if relation_labels is None else dict(relation_labels)
    if mentions is None:
        spans_by_doc = rederive_mentions(contributions, {c.document: gold[c.document].text for c in contributions})
        source = "spacy"
    else:
        spans_by_doc = {doc: list(spans) for doc, spans in mentions.items()}
        source = "given"

    tally = _Tally()
    for rel in DEPENDENCY_RELATIONS:
        tally.row(rel)
    relation_ids: set[str] = set()
    unmapped = cited_not_rederived = hits_not_linkable = n_mentions = 0
    unlabelled_linkable = unlabelled_recalled = 0
    outcomes: list[tuple[str | None, float, bool]] = []
    for c in contributions:
        g = gold[c.document]
        # Mentions by (start, end, key): the derived ones, then every cited one.
        found: dict[tuple[int, int, str], _Mention] = {}
        for sp in spans_by_doc.get(c.document, []):
            found.setdefault(
                (sp.start_char, sp.end_char, sp.key),
                _Mention(sp.key, sp.kind, sp.sent_index, g.words_in(sp.start_char, sp.end_char)),
            )
        for (src, tgt, _), items in c.edges.items():
            for ev in items:
                for key, start, end in ((src, ev.source_start, ev.source_end), (tgt, ev.target_start, ev.target_end)):
                    if (start, end, key) not in found:
                        cited_not_rederived += 1
                        kind = _top_kind(c.nodes[key].kinds) if key in c.nodes else ""
                        found[(start, end, key)] = _Mention(key, kind, ev.sentence_index, g.words_in(start, end))
        n_mentions += len(found)

        # Linkable arcs: dependent and head in two mentions of one sentence with different keys.
        by_word: dict[int, list[_Mention]] = defaultdict(list)
        for m in found.values():
            for w in m.words:
                by_word[w].append(m)
        linkable: set[tuple[str, int, int]] = set()
        pronoun_arcs: set[tuple[str, int, int]] = set()
        for arc in g.arc_list:
            _, dep, head = arc
            pairs = [
                (a, b)
                for a in by_word.get(dep, [])
                for b in by_word.get(head, [])
                if a.sent == b.sent and a.key != b.key
            ]
            if pairs:
                linkable.add(arc)
                if any("pronoun" in (a.kind, b.kind) for a, b in pairs):
                    pronoun_arcs.add(arc)

        hit_labelled: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
        hit_any: set[tuple[str, int, int]] = set()
        for (src, tgt, relation_id), items in c.edges.items():
            relation_ids.add(relation_id)
            relation = edge_relation(relation_id, labels)
            row = tally.row(relation)
            for ev in items:
                s = found[(ev.source_start, ev.source_end, src)]
                t = found[(ev.target_start, ev.target_end, tgt)]
                if not s.words or not t.words:
                    unmapped += 1
                arcs = {
                    arc for a in s.words for b in t.words if a != b for arc in g.arcs.get((min(a, b), max(a, b)), [])
                }
                same = [arc for arc in arcs if arc[0] == relation] if relation is not None else []
                is_labelled = bool(same)
                is_directed = any(head in s.words and dep in t.words for _, dep, head in same)
                is_unlabelled = bool(arcs)
                pron = "pronoun" in (s.kind, t.kind)
                outcomes.append((relation, float(ev.score), is_labelled))
                for r in (row, tally.overall, tally.with_pronoun if pron else tally.without_pronoun):
                    r.occurrences += 1
                    r.labelled += is_labelled
                    r.directed += is_directed
                    r.unlabelled += is_unlabelled
                if relation is not None:
                    hit_labelled[relation].update(same)
                hit_any.update(arcs)

        for arc in linkable:
            deprel = arc[0]
            hit = arc in hit_labelled.get(deprel, ())
            if deprel in DEPENDENCY_RELATIONS or deprel in tally.relations:
                named = tally.row(deprel)
                named.linkable += 1
                named.recalled += hit
            if deprel in DEPENDENCY_RELATIONS:
                tally.overall.linkable += 1
                tally.overall.recalled += hit
                side = tally.with_pronoun if arc in pronoun_arcs else tally.without_pronoun
                side.linkable += 1
                side.recalled += hit
            unlabelled_linkable += 1
            unlabelled_recalled += arc in hit_any
        hits_not_linkable += len(hit_any - linkable)  # hit_any holds the labelled hits too

    scored = {c.document for c in contributions}
    return GraphScore(
        mode=_mode(relation_ids),
        relations=tally.relations,
        unnamed=tally.unnamed,
        overall=tally.overall,
        unlabelled_linkable=unlabelled_linkable,
        unlabelled_recalled=unlabelled_recalled,
        with_pronoun=tally.with_pronoun,
        without_pronoun=tally.without_pronoun,
        documents=len(scored),
        sentences=sum(gold[d].n_sentences for d in scored),
        gold_words=sum(len(gold[d].starts) for d in scored),
        gold_documents_not_in_graph=len(set(gold) - scored),
        unmapped_occurrences=unmapped,
        mentions_source=source,
        mentions=n_mentions,
        cited_not_rederived=cited_not_rederived,
        hits_not_linkable=hits_not_linkable,
        repeated_gold_ids=repeated,
        outcomes=outcomes,
        source=str(conllu_path),
    )
