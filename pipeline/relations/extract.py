"""From span mentions and model subwords to typed span-pair relations (one DocumentAnalysis per document).

Alignment. Spans and the model's subwords meet through character offsets: a subword belongs to a span
when their character ranges overlap. This is many-to-many (BERT's "don" covers spaCy's "do" and part of
"n't"), robust to the uncased tokenizer stripping accents (its offsets still point into the original
text), and whitespace has no subwords at all.

Windows. A document is cut into windows of whole sentences that fit the model (``max_tokens`` subwords
including special tokens). Each window scores only the sentences it *owns*; it may start with up to
``overlap`` earlier sentences as left context, which it does not score, so every sentence is scored
exactly once and no relation is counted twice. A single sentence longer than a window is split at
span-safe character positions into pieces that are scored separately (counted in ``stats``).

Pooling (Clark et al. 2019). For a subspace's attention share p(i, j) between subwords, the score of
span A (query side) to span B (key side) is the attention *to* B summed over B's subwords, averaged
*from* A's subwords:  s(A, B) = mean_{i in A} sum_{j in B} p(i, j).  It stays in [0, 1]. Pairs of spans
in the same sentence with s >= threshold are kept; self-pairs (same node key) are dropped, and special
tokens never belong to a span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from pipeline.model.extractor import KnowledgeGraphExtractor, RelationalSubspace
from pipeline.types import Document, DocumentAnalysis, Span, SpanRelation

log = logging.getLogger("qkgraph.relations")


@dataclass(frozen=True)
class Window:
    """A character range of a document fed to the model at once.

    ``owned`` are the sentence indices this window scores; other sentences in it are context.
    """

    doc_index: int
    start: int
    end: int
    owned: tuple[int, ...]


@dataclass
class RelationStats:
    documents: int = 0
    windows: int = 0
    tokens: int = 0
    split_sentences: int = 0
    relations: int = 0


def _count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_windows(
    tokenizer, text: str, sentences: Sequence[tuple[int, int]], doc_index: int, max_tokens: int, overlap: int = 1
) -> tuple[list[Window], int]:
    """Sentence-aligned windows with ``overlap`` context sentences; returns (windows, split_sentences)."""
    budget = max_tokens - tokenizer.num_special_tokens_to_add(pair=False)
    sizes = [_count_tokens(tokenizer, text[a:b]) for a, b in sentences]
    windows: list[Window] = []
    split = 0
    i = 0
    n = len(sentences)
    while i < n:
        if sizes[i] > budget:
            split += 1
            windows.extend(_split_sentence(tokenizer, text, sentences[i], i, doc_index, budget))
            i += 1
            continue
        # left context: up to `overlap` previous sentences, if they fit alongside sentence i
        ctx_start = i
        used = sizes[i]
        context = 0
        # context sentences must fit beside sentence i and take at most half the window
        while (
            ctx_start > 0
            and i - ctx_start < overlap
            and used + sizes[ctx_start - 1] <= budget
            and context + sizes[ctx_start - 1] <= budget // 2
        ):
            ctx_start -= 1
            used += sizes[ctx_start]
            context += sizes[ctx_start]
        j = i + 1
        while j < n and used + sizes[j] <= budget:
            used += sizes[j]
            j += 1
        windows.append(Window(doc_index, sentences[ctx_start][0], sentences[j - 1][1], tuple(range(i, j))))
        i = j
    return windows, split


def _split_sentence(
    tokenizer, text: str, sentence: tuple[int, int], index: int, doc_index: int, budget: int
) -> list[Window]:
    """Cut an over-long sentence at whitespace into pieces of at most ``budget`` subwords."""
    a, b = sentence
    enc = tokenizer(text[a:b], add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    pieces = []
    start_tok = 0
    while start_tok < len(offsets):
        end_tok = min(start_tok + budget, len(offsets))
        # back off to a subword that starts after whitespace, so no word is cut in two
        cut = end_tok
        if end_tok < len(offsets):
            while cut > start_tok + 1 and not text[a + offsets[cut][0] - 1].isspace():
                cut -= 1
            if cut == start_tok + 1:
                cut = end_tok
        pieces.append(Window(doc_index, a + offsets[start_tok][0], a + offsets[cut - 1][1], (index,)))
        start_tok = cut
    return pieces


def membership(spans: Sequence[Span], offsets: torch.Tensor, window_start: int) -> torch.Tensor:
    """[n_spans, T] boolean: subword t overlaps span s (offsets are [T, 2] relative to the window)."""
    starts = offsets[:, 0] + window_start
    ends = offsets[:, 1] + window_start
    real = offsets[:, 1] > offsets[:, 0]  # special tokens and padding have empty offsets
    s0 = torch.tensor([s.start_char for s in spans], dtype=torch.long)[:, None]
    s1 = torch.tensor([s.end_char for s in spans], dtype=torch.long)[:, None]
    return (starts[None] < s1) & (ends[None] > s0) & real[None]


def pool_span_scores(scores: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Clark pooling. scores [S, T, T] (one window), member [n, T] -> [S, n, n] span scores."""
    m = member.to(scores.dtype)
    from_avg = m / m.sum(1, keepdim=True).clamp(min=1)  # average over the query span's subwords
    return torch.einsum("at,stu,bu->sab", from_avg, scores, m)  # sum over the key span's subwords


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
                key_ids = {}
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
