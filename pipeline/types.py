"""Typed records passed between pipeline steps: text -> spans -> relations -> graph -> store.

These are the contracts between modules; each step is a plain function from one of these to the next.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

SpanKind = Literal["entity", "noun_chunk", "word", "pronoun"]

DEPENDENCY_RELATIONS: tuple[str, ...] = (
    "nsubj",
    "nsubj:pass",
    "obj",
    "iobj",
    "amod",
    "det",
    "case",
    "compound",
    "aux",
    "aux:pass",
    "advmod",
    "nmod:poss",
    "mark",
    "ccomp",
    "xcomp",
    "compound:prt",
    "obl",
    "nmod",
    "conj",
    "cc",
    "cop",
    "acl",
    "acl:relcl",
    "advcl",
    "nummod",
    "appos",
)
"""The closed set of Universal Dependencies relation names a typed relation can carry (matched exactly
on DEPREL by the evaluation: ``obl`` excludes ``obl:tmod``, ``nsubj`` excludes ``nsubj:pass``)."""


def content_hash(text: str) -> str:
    """sha256 hex digest of a document's text (UTF-8); identifies a version of a document."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """One document to ingest.

    Attributes:
        id: stable identifier, unique within a run (a file's path relative to its root, prefixed by
            the root's name when several roots are given; a JSONL ``id``; a CoNLL-U ``newdoc id``; see
            ``pipeline.text.sources.iter_documents``).
        text: the full text, as Unicode, free of characters XML 1.0 forbids.
        source: where it came from (path, or path:line for JSONL), for messages and provenance.
        meta: optional extra fields (e.g. other JSONL keys), never interpreted by the pipeline.
        replaced_chars: how many XML-illegal code points of the input text were replaced at load
            (each by one character, so offsets into the text still match the input's).
    """

    id: str
    text: str
    source: str = ""
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    replaced_chars: int = field(default=0, compare=False, hash=False)

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


@dataclass(frozen=True)
class SkippedInput:
    """An input that was not ingested, with the reason (never dropped silently)."""

    source: str
    reason: Literal["empty", "binary", "encoding", "malformed", "unsupported", "too_large", "duplicate_id", "error"]
    detail: str = ""


@dataclass(frozen=True)
class Span:
    """A mention of a graph node in one document.

    Attributes:
        key: the node key, shared by every mention of the same thing across documents, e.g.
            ``"entity:PERSON:marie curie"``, ``"noun_chunk:radium institute"``, ``"word:discover"``.
        text: surface text of this mention.
        label: spaCy entity label for entities (PERSON, GPE, ORG, ...); "" for other kinds.
        kind: entity / noun_chunk / word.
        sent_index: index of the sentence within the document (0-based).
        start_char, end_char: character offsets of the mention in the document text.
    """

    key: str
    text: str
    label: str
    kind: SpanKind
    sent_index: int
    start_char: int
    end_char: int


@dataclass(frozen=True)
class SpanRelation:
    """Evidence, from one sentence, that span ``source`` relates to span ``target``.

    Typed relations (the default): ``relation`` is a UD name from DEPENDENCY_RELATIONS, ``source`` is
    the span holding the head word and ``target`` the span holding the dependent (``won -obj-> the
    Nobel Prize``), ``score`` the calibrated probability that the word pair is a gold arc of the
    relation, and ``unit`` the id of the typed relational subspace behind it.
    Untyped subspaces (``--relation-types subspaces``): ``relation`` is the subspace id
    (``L2H8k12``), direction follows attention (``source`` the query side), ``score`` the pooled
    attention share, and ``unit`` is empty.

    Attributes:
        source, target: indices into ``DocumentAnalysis.spans``.
        relation: relation name or subspace id.
        score: in [0, 1], as above.
        sent_index: the sentence the evidence comes from.
        unit: the unit id of a typed relation ("" for untyped subspaces).
    """

    source: int
    target: int
    relation: str
    score: float
    sent_index: int
    unit: str = ""


@dataclass(frozen=True)
class Word:
    """A word of a document (a spaCy token other than whitespace): the endpoints of typed relations.

    Attributes:
        start, end: character offsets in the document text.
        sent: index of its sentence in the document.
        text, lemma: as written, and its lemma.
        pos: its universal part of speech (NOUN, VERB, PRON...).
    """

    start: int
    end: int
    sent: int
    text: str = ""
    lemma: str = ""
    pos: str = ""


FactKind = Literal["action", "oblique", "copula", "possession"]
"""How a fact was composed (``pipeline.relations.facts``): subject + obj/iobj of one predicate
(``action``), subject + obl with its case word (``oblique``: "born in"), subject + cop (``copula``:
"X is a Y"), or nmod:poss (``possession``: "X's Y")."""


@dataclass(frozen=True)
class FactArc:
    """One typed word-to-word arc that supports a fact.

    Attributes:
        relation: its UD name (``nsubj``, ``obj``, ``case``...).
        unit: the id of the typed unit that produced it ("" for arcs from a parser, e.g. spaCy's).
        probability: its calibrated probability (1.0 for a parser's arcs).
        head_start, head_end, dependent_start, dependent_end: character offsets of the two words in the
            document text.
    """

    relation: str
    unit: str
    probability: float
    head_start: int
    head_end: int
    dependent_start: int
    dependent_end: int


@dataclass(frozen=True)
class SpanFact:
    """A statement about two spans of one sentence: ``subject -[predicate]-> object``.

    Composed from typed arcs (``pipeline.relations.facts.compose_facts``): "Marie Curie won the Nobel
    Prize" gives ``(Marie Curie, win, the Nobel Prize)`` from nsubj(won, Curie) and obj(won, Prize).

    Attributes:
        subject, object: indices into ``DocumentAnalysis.spans`` (two spans with different keys).
        predicate: the predicate's lemma, plus particle and preposition (``win``, ``set up``,
            ``move to``, ``be born in``, ``be``, ``have``); text from the document.
        probability: the probability that the fact is right: the product of the probabilities of
            ``arcs`` (it is right only if every arc is), through the model's fact calibration map.
        sent_index: the sentence it comes from.
        kind: how it was composed (``FactKind``).
        arcs: the arcs it rests on, subject arc first.
        predicate_start, predicate_end: character offsets of the predicate word (the verb; the copula
            for ``copula``); -1, -1 for ``possession``, which has no predicate word.
    """

    subject: int
    object: int
    predicate: str
    probability: float
    sent_index: int
    kind: FactKind
    arcs: tuple[FactArc, ...]
    predicate_start: int = -1
    predicate_end: int = -1


@dataclass
class DocumentAnalysis:
    """Everything the graph needs from one document.

    Attributes:
        document: the document analysed.
        sentences: (start_char, end_char) of each sentence in the document text.
        spans: node mentions.
        relations: span-pair relation evidence (at most one per (source, target, relation, sentence)).
        n_tokens: number of model subword tokens processed (for throughput figures).
        settings: the extractor settings used (model, layers, top_k, threshold...), for provenance.
        facts: statements composed from the typed relations of each sentence (typed mode only; empty
            for untyped subspaces), at most one per (subject, object, predicate, sentence).
    """

    document: Document
    sentences: list[tuple[int, int]]
    spans: list[Span]
    relations: list[SpanRelation]
    n_tokens: int = 0
    settings: dict[str, str | int | float] = field(default_factory=dict)
    facts: list[SpanFact] = field(default_factory=list)

    def checked_fact(self, i: int) -> float:
        """Fact ``i``'s probability as a float, after checking it against this analysis.

        Raises ValueError when the fact points outside ``spans`` or ``sentences``, its predicate is
        empty, or a probability is not finite or outside [0, 1].
        """
        import math

        fact = self.facts[i]
        doc_id = self.document.id
        n_spans, n_sentences = len(self.spans), len(self.sentences)
        if not (0 <= fact.subject < n_spans and 0 <= fact.object < n_spans):
            raise ValueError(
                f"document {doc_id!r}: fact {i} refers to span {fact.subject}->{fact.object}, "
                f"but the analysis has {n_spans} spans"
            )
        if not 0 <= fact.sent_index < n_sentences:
            raise ValueError(
                f"document {doc_id!r}: fact {i} cites sentence {fact.sent_index}, "
                f"but the analysis has {n_sentences} sentences"
            )
        if not fact.predicate.strip():
            raise ValueError(f"document {doc_id!r}: fact {i} has an empty predicate")
        for value in (fact.probability, *(arc.probability for arc in fact.arcs)):
            if not (math.isfinite(float(value)) and 0.0 <= float(value) <= 1.0):
                raise ValueError(f"document {doc_id!r}: fact {i} has a probability {value!r} outside [0, 1]")
        return float(fact.probability)

    def checked_score(self, i: int) -> float:
        """Relation ``i``'s score as a float, after checking it against this analysis.

        Raises ValueError when the relation points outside ``spans`` or ``sentences`` or its score is
        not finite: a consumer (the graph, the store) must reject such an analysis before writing.
        """
        import math

        rel = self.relations[i]
        doc_id = self.document.id
        n_spans, n_sentences = len(self.spans), len(self.sentences)
        if not (0 <= rel.source < n_spans and 0 <= rel.target < n_spans):
            raise ValueError(
                f"document {doc_id!r}: relation {i} refers to span {rel.source}->{rel.target}, "
                f"but the analysis has {n_spans} spans"
            )
        if not 0 <= rel.sent_index < n_sentences:
            raise ValueError(
                f"document {doc_id!r}: relation {i} cites sentence {rel.sent_index}, "
                f"but the analysis has {n_sentences} sentences"
            )
        score = float(rel.score)
        if not math.isfinite(score):
            raise ValueError(f"document {doc_id!r}: relation {i} has a non-finite score {rel.score!r}")
        return score

    def sentence_text(self, index: int) -> str:
        start, end = self.sentences[index]
        return self.document.text[start:end]


WriteResult = Literal["added", "unchanged", "replaced"]
"""What a sink did with one document."""

_ERROR_CHARS = 500


@dataclass(frozen=True)
class FailedDocument:
    """A document that was read but could not be extracted or written, and why."""

    id: str
    source: str
    stage: str  # "extract", or the name of the sink that refused it ("files", "neo4j")
    error: str

    @classmethod
    def of(cls, document: Document, stage: str, exc: BaseException) -> FailedDocument:
        text = f"{type(exc).__name__}: {exc}"
        if len(text) > _ERROR_CHARS:
            text = text[: _ERROR_CHARS - 3] + "..."
        return cls(document.id, document.source, stage, text)
