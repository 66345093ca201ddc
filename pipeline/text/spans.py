"""spaCy analysis of documents into sentences and span mentions (graph nodes).

Nodes are named entities, noun chunks that do not overlap an entity, pronouns (a pronoun-only noun
chunk), and optionally content words outside all of them. Each mention gets a key shared by every
mention of the same thing across documents:

    entity:<LABEL>:<text casefolded, leading "the/a/an" dropped, whitespace collapsed>
    noun_chunk:<lemmas casefolded, determiners and possessive pronouns dropped>
    pronoun:<document id>:<pronoun casefolded>
    word:<lemma casefolded>

Pronouns are nodes of their document only. Most subjects of web text are pronouns ("she won it"), so
dropping them drops most statements; merging every "she" of a corpus into one node would link
unrelated people; and resolving the antecedent needs a coreference model the pipeline does not have.
Within one document a pronoun mostly keeps its referent, so ``pronoun:<doc>:she`` is one node per
document that a user (or a later coreference step) can resolve.

Besides the spans, parsing yields the document's *words* (spaCy tokens other than whitespace, with
their sentence): the typed relations are computed between words, then lifted to the spans holding them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan

from pipeline.text.defaults import DEFAULT_WORD_POS
from pipeline.types import Document, Span, SpanKind, Word

_ARTICLES = {"the", "a", "an"}

MAX_SPAN_CHARS = 300
"""Mentions longer than this are not nodes: no real name or noun phrase is that long (what is, is a run of
unpunctuated text or a pasted blob), and its key would exceed what Neo4j can index (about 8 KB)."""
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class SpanOptions:
    """Which spans become nodes. ``word_pos`` empty means no word nodes."""

    entities: bool = True
    noun_chunks: bool = True
    pronouns: bool = True
    word_pos: tuple[str, ...] = DEFAULT_WORD_POS


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def _display(text: str) -> str:
    """Surface text for display: whitespace runs (line breaks inside a span) become one space."""
    return _WS.sub(" ", text).strip()


def entity_key(ent: SpacySpan) -> str:
    words = [t for t in ent if not t.is_space]
    while words and words[0].lower_ in _ARTICLES:
        words = words[1:]
    text = _norm(" ".join(t.text for t in words)) or _norm(ent.text)
    return f"entity:{ent.label_}:{text}"


def noun_chunk_key(chunk: SpacySpan) -> str | None:
    """The key of a noun chunk; None for a pronoun-only chunk ("she", "it": see ``pronoun_key``)."""
    words = [t for t in chunk if not t.is_space and t.pos_ not in ("DET", "PUNCT") and t.dep_ != "poss"]
    if not words or all(t.pos_ == "PRON" for t in words):
        return None
    return "noun_chunk:" + _norm(" ".join(t.lemma_ for t in words))


def pronoun_key(chunk: SpacySpan, doc_id: str) -> str | None:
    """``pronoun:<doc id>:<pronoun>`` for a chunk of pronouns only (possessives aside); else None."""
    words = [t for t in chunk if not t.is_space and t.pos_ != "PUNCT"]
    if not words or not all(t.pos_ == "PRON" for t in words):
        return None
    # the lemma: "she" and "her" of one document are one node
    return f"pronoun:{doc_id}:" + _norm(" ".join(t.lemma_ or t.text for t in words))


class ParsedDocument(NamedTuple):
    """One document after spaCy: sentences and spans (graph nodes) and words (relation endpoints).

    ``words``: every spaCy token that is not whitespace, in order (``Word``: offsets, sentence, text,
    lemma, universal POS).
    """

    document: Document
    sentences: list[tuple[int, int]]
    spans: list[Span]
    words: list[Word]


def document_words(doc: Doc) -> list[Word]:
    """Every token of ``doc`` that is not whitespace, in order, as a ``Word``."""
    out = []
    for si, sent in enumerate(doc.sents):
        for t in sent:
            if not t.is_space:
                out.append(Word(t.idx, t.idx + len(t.text), si, t.text, t.lemma_, t.pos_))
    return out


def document_spans(
    doc: Doc, options: SpanOptions = SpanOptions(), doc_id: str | None = None
) -> tuple[list[tuple[int, int]], list[Span]]:
    """Sentences (char offsets) and span mentions of one parsed document, ordered by position.

    Pronoun nodes need the document's id (``doc_id``); without one, pronoun chunks are left out."""
    sentences = [(s.start_char, s.end_char) for s in doc.sents]
    sent_of_token = {}
    for si, s in enumerate(doc.sents):
        for t in s:
            sent_of_token[t.i] = si
    spans: list[Span] = []
    taken = [False] * len(doc)
    if options.entities:
        for ent in doc.ents:
            if all(t.is_space or t.is_punct for t in ent):
                continue
            spans.append(
                Span(
                    entity_key(ent),
                    _display(ent.text),
                    ent.label_,
                    "entity",
                    sent_of_token[ent.start],
                    ent.start_char,
                    ent.end_char,
                )
            )
            for t in ent:
                taken[t.i] = True
    if options.noun_chunks:
        for chunk in doc.noun_chunks:
            if any(taken[t.i] for t in chunk):
                continue
            key = noun_chunk_key(chunk)
            kind: SpanKind = "noun_chunk"
            if key is None and options.pronouns and doc_id is not None:
                key, kind = pronoun_key(chunk, doc_id), "pronoun"
            if key is None:
                continue
            spans.append(
                Span(
                    key,
                    _display(chunk.text),
                    "",
                    kind,
                    sent_of_token[chunk.start],
                    chunk.start_char,
                    chunk.end_char,
                )
            )
            for t in chunk:
                taken[t.i] = True
    if options.word_pos:
        for t in doc:
            if taken[t.i] or t.pos_ not in options.word_pos or t.is_stop or t.is_space or not t.lemma_.strip():
                continue
            spans.append(
                Span(f"word:{_norm(t.lemma_)}", t.text, "", "word", sent_of_token[t.i], t.idx, t.idx + len(t.text))
            )
    # The mention is left out, not cut: a truncated key would merge unrelated long texts.
    spans = [sp for sp in spans if sp.end_char - sp.start_char <= MAX_SPAN_CHARS]
    spans.sort(key=lambda s: (s.start_char, s.end_char, s.key))
    return sentences, spans


def parse_documents(
    nlp: Language, documents: Iterable[Document], batch_size: int = 16, options: SpanOptions = SpanOptions()
) -> Iterator[ParsedDocument]:
    """Stream documents through ``nlp.pipe`` and yield ParsedDocument(document, sentences, spans, words)."""
    stream = ((d.text, d) for d in documents)
    for doc, document in nlp.pipe(stream, as_tuples=True, batch_size=batch_size):
        sentences, spans = document_spans(doc, options, doc_id=document.id)
        yield ParsedDocument(document, sentences, spans, document_words(doc))
