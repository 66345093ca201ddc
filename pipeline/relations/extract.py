"""From span mentions and model subwords to typed span-pair relations (one DocumentAnalysis per document).

The rooms: ``windows`` (sentence-aligned windows), ``alignment`` (spans to subwords), ``pooling``
(subword scores to span scores); this module streams documents through them and the extractor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from pipeline.model.extractor import KnowledgeGraphExtractor, RelationalSubspace
from pipeline.relations.alignment import membership
from pipeline.relations.pooling import pool_span_scores
from pipeline.relations.windows import Window, make_windows
from pipeline.types import Document, DocumentAnalysis, Span, SpanRelation

log = logging.getLogger("qkgraph.relations")


@dataclass
class RelationStats:
    documents: int = 0
    windows: int = 0
    tokens: int = 0
    split_sentences: int = 0
    relations: int = 0


@dataclass
class _Pending:
    document: Document
    sentences: list[tuple[int, int]]
    spans: list[Span]
    windows_left: int
    relations: dict[tuple[int, int, str, int], float] = field(default_factory=dict)
    n_tokens: int = 0


class RelationExtractor:
    """Turns parsed documents into DocumentAnalysis objects using a set of relational subspaces."""

    def __init__(
        self,
        extractor: KnowledgeGraphExtractor,
        subspaces: Sequence[RelationalSubspace],
        threshold: float = 0.7,
        max_tokens: int | None = None,
        overlap: int = 1,
        batch_windows: int = 16,
        settings: dict | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if extractor.tokenizer is None:
            raise ValueError("the extractor needs a tokenizer (with offsets) to align spans")
        self.ex = extractor
        self.tok = extractor.tokenizer
        self.subspaces = list(subspaces)
        self.threshold = threshold
        limit = getattr(extractor.model.config, "max_position_embeddings", 512) or 512
        self.max_tokens = min(max_tokens or 512, limit)
        self.overlap = overlap
        self.batch_windows = batch_windows
        self.settings = dict(settings or {})
        self.stats = RelationStats()

    def run(self, parsed: Iterable[tuple[Document, list[tuple[int, int]], list[Span]]]) -> Iterator[DocumentAnalysis]:
        """Stream (document, sentences, spans) -> DocumentAnalysis, batching windows across documents."""
        pending: dict[int, _Pending] = {}
        queue: list[Window] = []
        next_out = 0
        for index, (document, sentences, spans) in enumerate(parsed):
            windows, split = make_windows(self.tok, document.text, sentences, index, self.max_tokens, self.overlap)
            self.stats.split_sentences += split
            pending[index] = _Pending(document, sentences, spans, len(windows))
            queue.extend(windows)
            while len(queue) >= self.batch_windows:
                self._score(queue[: self.batch_windows], pending)
                queue = queue[self.batch_windows :]
            next_out = yield from self._emit(pending, next_out)
        while queue:
            self._score(queue[: self.batch_windows], pending)
            queue = queue[self.batch_windows :]
        yield from self._emit(pending, next_out)

    def _emit(self, pending: dict[int, _Pending], next_out: int):
        # documents leave in input order, once all their windows are scored
        while next_out in pending and pending[next_out].windows_left == 0:
            yield self._finish(pending.pop(next_out))
            next_out += 1
        return next_out

    def _finish(self, p: _Pending) -> DocumentAnalysis:
        rels = [SpanRelation(a, b, rel, score, sent) for (a, b, rel, sent), score in sorted(p.relations.items())]
        self.stats.documents += 1
        self.stats.relations += len(rels)
        return DocumentAnalysis(p.document, p.sentences, p.spans, rels, p.n_tokens, dict(self.settings))

    def _score(self, windows: list[Window], pending: dict[int, _Pending]) -> None:
        texts = [pending[w.doc_index].document.text[w.start : w.end] for w in windows]
        enc = self.tok(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
        )
        offsets = enc.pop("offset_mapping")
        scores, _, _ = self.ex.relation_scores(enc["input_ids"], self.subspaces, attention_mask=enc["attention_mask"])
        ids = [s.id for s in self.subspaces]
        self.stats.windows += len(windows)
        for b, w in enumerate(windows):
            p = pending[w.doc_index]
            n_real = int(enc["attention_mask"][b].sum())
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
                    if value > p.relations.get(key, -1.0):
                        p.relations[key] = value
            p.windows_left -= 1
