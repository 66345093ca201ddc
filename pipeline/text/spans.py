"""spaCy analysis of documents into sentences and span mentions (graph nodes).

Nodes are named entities, noun chunks that do not overlap an entity (pronoun-only chunks dropped), and
optionally content words outside both. Each mention gets a key shared by every mention of the same
thing across documents:

    entity:<LABEL>:<text casefolded, leading "the/a/an" dropped, whitespace collapsed>
    noun_chunk:<lemmas casefolded, determiners and possessive pronouns dropped>
    word:<lemma casefolded>
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan

from pipeline.text.defaults import DEFAULT_WORD_POS
from pipeline.types import Document, Span

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
    words = [t for t in chunk if not t.is_space and t.pos_ not in ("DET", "PUNCT") and t.dep_ != "poss"]
    if not words or all(t.pos_ == "PRON" for t in words):
        return None  # "she", "it", "their": no value as a node on its own
    return "noun_chunk:" + _norm(" ".join(t.lemma_ for t in words))


def document_spans(doc: Doc, options: SpanOptions = SpanOptions()) -> tuple[list[tuple[int, int]], list[Span]]:
    """Sentences (char offsets) and span mentions of one parsed document, ordered by position."""
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
            if key is None:
                continue
            spans.append(
                Span(
                    key,
                    _display(chunk.text),
                    "",
                    "noun_chunk",
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
) -> Iterator[tuple[Document, list[tuple[int, int]], list[Span]]]:
    """Stream documents through ``nlp.pipe`` and yield (document, sentences, spans)."""
    stream = ((d.text, d) for d in documents)
    for doc, document in nlp.pipe(stream, as_tuples=True, batch_size=batch_size):
        sentences, spans = document_spans(doc, options)
        yield document, sentences, spans
