"""Sentence-aligned windows of a document that fit the model.

Windows. A document is cut into windows of whole sentences that fit the model (``max_tokens`` subwords
including special tokens). Each window scores only the sentences it *owns*; it may start with up to
``overlap`` earlier sentences as left context, which it does not score, so every sentence is scored
exactly once and no relation is counted twice. A single sentence longer than a window is split at
span-safe character positions into pieces that are scored separately (counted in ``stats``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Window:
    """A character range of a document fed to the model at once.

    ``owned`` are the sentence indices this window scores; other sentences in it are context.
    """

    doc_index: int
    start: int
    end: int
    owned: tuple[int, ...]


def count_tokens_each(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """The subword count of each text without special tokens, in one tokenizer call (one call per
    text costs more in Python than the encoding itself)."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def make_windows(
    tokenizer: Any,
    text: str,
    sentences: Sequence[tuple[int, int]],
    doc_index: int,
    max_tokens: int,
    overlap: int = 1,
    max_sentences: int | None = None,
    reserved: int = 0,
) -> tuple[list[Window], int]:
    """Sentence-aligned windows with ``overlap`` context sentences; returns (windows, split_sentences).

    ``max_sentences``: owned sentences per window at most (1 for typed relations, whose calibration
    was measured one sentence at a time); ``reserved``: tokens kept free for a prepended token."""
    budget = max_tokens - tokenizer.num_special_tokens_to_add(pair=False) - reserved
    sizes = count_tokens_each(tokenizer, [text[a:b] for a, b in sentences])
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
        while j < n and used + sizes[j] <= budget and (max_sentences is None or j - i < max_sentences):
            used += sizes[j]
            j += 1
        windows.append(Window(doc_index, sentences[ctx_start][0], sentences[j - 1][1], tuple(range(i, j))))
        i = j
    return windows, split


def _split_sentence(
    tokenizer: Any, text: str, sentence: tuple[int, int], index: int, doc_index: int, budget: int
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
