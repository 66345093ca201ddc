"""From span mentions and model subwords to span-pair relations (one DocumentAnalysis per document).

The rooms: ``windows`` (sentence-aligned windows), ``alignment`` (spans and words to subwords),
``pooling`` and ``words`` (subword scores to span or word scores), ``typed`` (the typed relations);
this module streams documents through them and the extractor.

Two modes:

* **typed** (the default of ``qkgraph ingest``): the model's typed relations (``TypedRelation``, from
  the label artifact) score every word of a sentence (``typed.score_words``, one sentence per model
  input, as the calibration was measured). A word pair (dependent, head) whose calibrated probability
  is a candidate when the two words lie in two different spans of the sentence; a word has one head in a
  dependency tree, so each dependent word keeps only its most probable relation. The candidate
  ``head span -relation-> dependent span`` becomes evidence when its *span-level* probability
  (``TypedRelation.span_probability``: the word-pair probability, lowered where graph occurrences of
  the relation were measured to be right less often) is >= ``threshold``.
* **subspaces** (exploration): untyped relational subspaces; the pooled attention share between two
  spans (``pooling``) >= ``threshold`` is evidence, named by the subspace id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.model.extractor import KnowledgeGraphExtractor, RelationalSubspace
from pipeline.relations.alignment import align_subwords, membership
from pipeline.relations.facts import (
    FACT_ARC_FLOOR,
    FACT_RELATIONS,
    Arc,
    FactCalibration,
    calibrate_facts,
    compose_facts,
    lift_facts,
)
from pipeline.relations.pooling import pool_span_scores
from pipeline.relations.typed import TypedRelation, score_batch
from pipeline.relations.windows import Window, make_windows
from pipeline.relations.words import WordBatch, pad_rows, prefix_token, word_batch
from pipeline.types import Document, DocumentAnalysis, Span, SpanRelation, Word

log = logging.getLogger("qkgraph.relations")

BATCH_TOKENS = 1024
"""Padded tokens per forward pass (rows x longest row) by default; see ``RelationExtractor``."""
LOOKAHEAD_BATCHES = 8
"""Windows are grouped by length within this many batches' worth of queued tokens."""

SPAN_CANDIDATE_FLOOR = 0.3
"""The span calibration maps are fitted on the candidates of an ingest run at this threshold, so
they are defined from it on (ingestion itself takes candidates from ``threshold``)."""


@dataclass
class RelationStats:
    documents: int = 0
    windows: int = 0
    tokens: int = 0
    padded_tokens: int = 0  # rows x longest row of every forward pass
    split_sentences: int = 0
    relations: int = 0
    facts: int = 0


@dataclass
class _Pending:
    document: Document
    sentences: list[tuple[int, int]]
    spans: list[Span]
    windows_left: int
    words: list[Word] = field(default_factory=list)
    relations: dict[tuple[int, int, str, int], tuple[float, str]] = field(default_factory=dict)
    n_tokens: int = 0
    word_span: list[int] | None = None  # typed mode: span index holding each word (-1 none)
    arcs: dict[int, Arc] = field(default_factory=dict)  # typed mode: the best arc of each dependent word
    by_sent: dict[int, list[int]] | None = None  # typed mode: indices of the words of each sentence

    def sentence_words(self, sents) -> list[int]:
        """Indices of the words of these sentences, in document order."""
        if self.by_sent is None:
            self.by_sent = {}
            for k, wd in enumerate(self.words):
                self.by_sent.setdefault(wd.sent, []).append(k)
        return sorted(k for s in set(sents) for k in self.by_sent.get(s, ()))


@dataclass
class _Row:
    """One window, tokenized when it is queued (its length decides its batch).

    ``ids``/``offsets``: the model input (typed mode: with the prefix token); ``members`` and
    ``word_ids`` (typed mode): subword positions of each local word, and its document-level index."""

    window: Window
    ids: list[int]
    offsets: list[tuple[int, int]]
    members: list[list[int]] = field(default_factory=list)
    word_ids: list[int] = field(default_factory=list)


class RelationExtractor:
    """Turns parsed documents into DocumentAnalysis objects, with typed relations or untyped subspaces.

    ``subspaces``: TypedRelation objects (typed mode) or RelationalSubspace objects (subspaces mode),
    not mixed. Typed mode needs the documents' words (``ParsedDocument.words``).

    Batching: windows of several documents share a forward pass. Each window is tokenized when it is
    queued; once the queue holds ``lookahead`` batches' worth of tokens (or the input ends), its
    windows are sorted by length and cut into batches whose padded size (rows x longest row) stays
    within ``batch_tokens`` (and, if given, at most ``batch_windows`` rows; a longer window goes
    alone). Results do not depend on the batching; documents still leave in input order.
    """

    def __init__(
        self,
        extractor: KnowledgeGraphExtractor,
        subspaces: Sequence[RelationalSubspace | TypedRelation],
        threshold: float = 0.7,
        max_tokens: int | None = None,
        overlap: int = 1,
        batch_tokens: int = BATCH_TOKENS,
        batch_windows: int | None = None,
        lookahead: int = LOOKAHEAD_BATCHES,
        settings: dict | None = None,
        fact_threshold: float | None = None,
        fact_knots: FactCalibration | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if fact_threshold is not None and not 0.0 <= fact_threshold <= 1.0:
            raise ValueError(f"fact_threshold must be in [0, 1], got {fact_threshold}")
        if batch_tokens < 1 or (batch_windows is not None and batch_windows < 1) or lookahead < 1:
            raise ValueError(
                f"batch_tokens, batch_windows and lookahead must be at least 1, got {batch_tokens}, "
                f"{batch_windows}, {lookahead}"
            )
        if extractor.tokenizer is None:
            raise ValueError("the extractor needs a tokenizer (with offsets) to align spans")
        items = list(subspaces)
        typed = [s for s in items if isinstance(s, TypedRelation)]
        if typed and len(typed) != len(items):
            raise ValueError("pass either typed relations or untyped subspaces, not both")
        self.ex = extractor
        self.tok = extractor.tokenizer
        self.typed: list[TypedRelation] = typed
        self.subspaces: list[RelationalSubspace] = (
            [] if typed else [s for s in items if isinstance(s, RelationalSubspace)]
        )
        self.threshold = threshold
        limit = getattr(extractor.model.config, "max_position_embeddings", 512) or 512
        self.max_tokens = min(max_tokens or 512, limit)
        # typed relations were calibrated on single sentences without context
        self.overlap = 0 if typed else overlap
        self.batch_tokens = batch_tokens
        self.batch_windows = batch_windows
        self.lookahead_tokens = lookahead * batch_tokens
        self.settings = dict(settings or {})
        self.stats = RelationStats()
        self.causal = extractor.adapter.causal
        self.prefix = prefix_token(self.tok, self.causal) if typed else None
        # the extractor's own factors: built once per extractor, with the caches unit_logits keeps on them
        self.factors = {t.layer: extractor.head_factors(t.layer) for t in typed}
        self.by_relation = {t.relation: t for t in typed}
        # facts need typed subjects; None: no facts (untyped subspaces, or not asked for)
        self.fact_threshold = fact_threshold if typed and "nsubj" in self.by_relation else None
        # arcs are kept from the fact floor on: a fact's arcs can each be below the edge threshold
        self.arc_floor = threshold if self.fact_threshold is None else min(threshold, FACT_ARC_FLOOR)
        self.fact_knots = fact_knots

    @property
    def mode(self) -> str:
        return "typed" if self.typed else "subspaces"

    def run(self, parsed: Iterable[Sequence]) -> Iterator[DocumentAnalysis]:
        """Stream ParsedDocument (document, sentences, spans, words) -> DocumentAnalysis, batching
        windows across documents. Subspaces mode also takes (document, sentences, spans)."""
        pending: dict[int, _Pending] = {}
        queue: list[_Row] = []
        queued = 0  # tokens in the queue
        next_out = 0
        for index, item in enumerate(parsed):
            document, sentences, spans = item[0], item[1], item[2]
            words = list(item[3]) if len(item) > 3 else None
            if self.typed and words is None:
                raise ValueError("typed relations need the documents' words: pass ParsedDocument items")
            windows, split = make_windows(
                self.tok,
                document.text,
                sentences,
                index,
                self.max_tokens,
                self.overlap,
                max_sentences=1 if self.typed else None,
                reserved=1 if self.prefix is not None else 0,
            )
            self.stats.split_sentences += split
            p = _Pending(document, sentences, spans, len(windows), words or [])
            pending[index] = p
            for row in self._prepare(windows, p):
                queue.append(row)
                queued += len(row.ids)
            if queued >= self.lookahead_tokens:
                self._score_queue(queue, pending)
                queue, queued = [], 0
            next_out = yield from self._emit(pending, next_out)
        self._score_queue(queue, pending)
        yield from self._emit(pending, next_out)

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices of rows of these lengths, sorted by length and cut into batches of at most
        ``batch_tokens`` padded tokens (and ``batch_windows`` rows); ties keep their order."""
        out: list[list[int]] = []
        current: list[int] = []
        for k in sorted(range(len(lengths)), key=lambda k: (lengths[k], k)):
            n = max(lengths[k], 1)  # ascending: the new row is the longest of its batch
            full = self.batch_windows is not None and len(current) >= self.batch_windows
            if current and (full or (len(current) + 1) * n > self.batch_tokens):
                out.append(current)
                current = []
            current.append(k)
        if current:
            out.append(current)
        return out

    def _score_queue(self, queue: list[_Row], pending: dict[int, _Pending]) -> None:
        for batch in self.batches([len(r.ids) for r in queue]):
            rows = [queue[k] for k in batch]
            if self.typed:
                self._score_typed(rows, pending)
            else:
                self._score_subspaces(rows, pending)

    def _prepare(self, windows: Sequence[Window], p: _Pending) -> list[_Row]:
        """The rows of one document's windows: their texts tokenized in one call."""
        if not windows:
            return []
        texts = [p.document.text[w.start : w.end] for w in windows]
        if not self.typed:
            enc = self.tok(texts, truncation=True, max_length=self.max_tokens, return_offsets_mapping=True)
            return [
                _Row(w, list(ids), [tuple(o) for o in offs])
                for w, ids, offs in zip(windows, enc["input_ids"], enc["offset_mapping"])
            ]
        enc = self.tok(
            texts,
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_tokens - (1 if self.prefix is not None else 0),
            return_offsets_mapping=True,
        )
        rows = []
        for w, text, ids_w, offs_w in zip(windows, texts, enc["input_ids"], enc["offset_mapping"]):
            ids = list(ids_w)
            offsets = [tuple(o) for o in offs_w]
            if self.prefix is not None:
                ids, offsets = [self.prefix] + ids, [(0, 0)] + offsets
            idx = [k for k in p.sentence_words(w.owned) if p.words[k].start >= w.start and p.words[k].end <= w.end]
            spans = [(p.words[k].start - w.start, p.words[k].end - w.start) for k in idx]
            rows.append(_Row(w, ids, offsets, align_subwords(text, offsets, spans), idx))
        return rows

    def _emit(self, pending: dict[int, _Pending], next_out: int):
        # documents leave in input order, once all their windows are scored
        while next_out in pending and pending[next_out].windows_left == 0:
            yield self._finish(pending.pop(next_out))
            next_out += 1
        return next_out

    def _finish(self, p: _Pending) -> DocumentAnalysis:
        if self.typed:
            # the claim of an edge occurrence is its span-calibrated probability
            rels = []
            for (a, b, rel, sent), (raw, unit) in sorted(p.relations.items()):
                score = self.by_relation[rel].span_probability(raw)
                if score >= self.threshold:
                    rels.append(SpanRelation(a, b, rel, score, sent, unit))
            facts = []
            if self.fact_threshold is not None and p.arcs:
                word_span = p.word_span if p.word_span is not None else word_spans(p.words, p.spans)
                composed = calibrate_facts(
                    compose_facts(p.words, p.arcs.values(), floor=self.arc_floor), self.fact_knots
                )
                facts = lift_facts(composed, p.words, word_span, p.spans, threshold=self.fact_threshold)
        else:
            rels = [
                SpanRelation(a, b, rel, score, sent, unit)
                for (a, b, rel, sent), (score, unit) in sorted(p.relations.items())
            ]
            facts = []
        self.stats.documents += 1
        self.stats.relations += len(rels)
        self.stats.facts += len(facts)
        return DocumentAnalysis(p.document, p.sentences, p.spans, rels, p.n_tokens, dict(self.settings), facts)

    def _score_subspaces(self, batch: list[_Row], pending: dict[int, _Pending]) -> None:
        windows = [r.window for r in batch]
        ids_t, mask = pad_rows([r.ids for r in batch])
        offsets = torch.zeros(len(batch), ids_t.shape[1], 2, dtype=torch.long)
        for b, r in enumerate(batch):
            offsets[b, : len(r.offsets)] = torch.tensor(r.offsets, dtype=torch.long).reshape(-1, 2)
        scores, _, _ = self.ex.relation_scores(ids_t, self.subspaces, attention_mask=mask)
        ids = [s.id for s in self.subspaces]
        self.stats.windows += len(windows)
        self.stats.padded_tokens += mask.numel()
        for b, w in enumerate(windows):
            p = pending[w.doc_index]
            n_real = int(mask[b].sum())
            p.n_tokens += n_real
            self.stats.tokens += n_real
            owned = set(w.owned)
            idx = [
                k
                for k, s in enumerate(p.spans)
                if s.sent_index in owned and s.start_char >= w.start and s.end_char <= w.end
            ]
            if len(idx) >= 2:
                spans = [p.spans[k] for k in idx]
                member = membership(spans, offsets[b], w.start)
                has = member.any(1)
                pooled = pool_span_scores(scores[:, b], member)  # [S, n, n]
                sent = torch.tensor([s.sent_index for s in spans])
                key_ids: dict[str, int] = {}
                key_index = torch.tensor([key_ids.setdefault(s.key, len(key_ids)) for s in spans])
                same_key = key_index[:, None] == key_index[None, :]
                ok = (sent[:, None] == sent[None, :]) & ~same_key & has[:, None] & has[None, :]
                hits = ((pooled >= self.threshold) & ok[None]).nonzero().tolist()
                for s_i, a, c in hits:
                    key = (idx[a], idx[c], ids[s_i], int(sent[a]))
                    value = float(pooled[s_i, a, c])
                    if value > p.relations.get(key, (-1.0, ""))[0]:
                        p.relations[key] = (value, "")
            p.windows_left -= 1

    # -- typed mode ----------------------------------------------------------------------------------

    def _score_typed(self, batch: list[_Row], pending: dict[int, _Pending]) -> None:
        windows = [r.window for r in batch]
        for w in windows:
            p = pending[w.doc_index]
            if p.word_span is None:
                p.word_span = word_spans(p.words, p.spans)
        members = [r.members for r in batch]
        ids_t, mask = pad_rows([r.ids for r in batch])
        self.stats.windows += len(batch)
        self.stats.padded_tokens += mask.numel()
        for b, w in enumerate(windows):
            n_real = int(mask[b].sum())
            pending[w.doc_index].n_tokens += n_real
            self.stats.tokens += n_real
        if any(members):
            self._typed_batch(
                windows, pending, word_batch(ids_t, mask, members, self.causal), [r.word_ids for r in batch]
            )
        for w in windows:
            pending[w.doc_index].windows_left -= 1

    def _typed_batch(
        self, windows: list[Window], pending: dict[int, _Pending], wb: WordBatch, word_ids: list[list[int]]
    ) -> None:
        scores = score_batch(self.ex, self.typed, self.factors, wb)
        # the best relation of each dependent word: (probability, relation, head word, unit); ties go to
        # the first relation in order, then the first query word
        best: dict[tuple[int, int], tuple[float, str, int, str]] = {}
        rels = list(scores)
        probs = torch.stack([scores[r].probability for r in rels]).numpy()  # [n_rel, N]
        partners = torch.stack([scores[r].partner for r in rels]).numpy()
        r_idx, n_idx = np.nonzero(probs >= self.arc_floor)  # relation-major, as the relations come
        if len(r_idx):
            q_word = wb.uidx.numpy()[n_idx]
            partner = partners[r_idx, n_idx]
            key_side = np.array([self.by_relation[r].head_side == "key" for r in rels])[r_idx]
            heads = np.where(key_side, partner, q_word)
            deps = np.where(key_side, q_word, partner)
            hit_prob = probs[r_idx, n_idx]
            rows = wb.bidx.numpy()[n_idx]
            dep_key = rows * (int(deps.max()) + 2) + deps + 1
            # per dependent word, the highest probability, among equals the earliest hit; the words in
            # the order of their first hit (as a loop over the relations and their hits would add them)
            order = np.lexsort((np.arange(len(hit_prob)), -hit_prob, dep_key))
            starts = np.flatnonzero(np.r_[True, dep_key[order][1:] != dep_key[order][:-1]])
            top, earliest = order[starts], np.minimum.reduceat(order, starts)
            for k in top[np.argsort(earliest)].tolist():
                rel = rels[r_idx[k]]
                best[(int(rows[k]), int(deps[k]))] = (float(hit_prob[k]), rel, int(heads[k]), self.by_relation[rel].id)
        for (b, dep), (prob, rel, head, unit) in best.items():
            w = windows[b]
            p = pending[w.doc_index]
            assert p.word_span is not None
            if self.fact_threshold is not None and rel in FACT_RELATIONS:
                p.arcs[word_ids[b][dep]] = Arc(word_ids[b][head], word_ids[b][dep], rel, prob, unit)
            if prob < self.threshold:
                continue  # kept for facts only
            sd, sh = p.word_span[word_ids[b][dep]], p.word_span[word_ids[b][head]]
            if sd < 0 or sh < 0 or p.spans[sd].key == p.spans[sh].key:
                continue
            sent = p.spans[sd].sent_index
            key = (sh, sd, rel, sent)
            if prob > p.relations.get(key, (-1.0, ""))[0]:
                p.relations[key] = (prob, unit)


def word_spans(words: Sequence[Word], spans: Sequence[Span]) -> list[int]:
    """For each word, the index of the span of its sentence that overlaps it (-1 none)."""
    out = [-1] * len(words)
    by_sent: dict[int, list[int]] = {}
    for k, s in enumerate(spans):
        by_sent.setdefault(s.sent_index, []).append(k)
    for n, wd in enumerate(words):
        a, b = wd.start, wd.end
        for k in by_sent.get(wd.sent, ()):
            s = spans[k]
            if s.start_char < b and a < s.end_char:
                out[n] = k
                break
    return out
