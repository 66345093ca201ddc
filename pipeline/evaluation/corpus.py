"""The gold corpus of the dependency evaluation: surface words, gold arcs, subword alignment, and
the document-level split into a selection part and a held-out part.

Predictions are made at the level of *surface words*: the gold words of a CoNLL-U sentence grouped
by their span in the text (the members of a multiword token such as ``do`` + ``n't`` share one
surface span, hence one surface word). A subword belongs to every word its character span overlaps
(whitespace trimmed), so a BPE piece such as ``),`` counts for both ``)`` and ``,``; a word no
subword overlaps is left out (no arcs).

Directions (per unit and relation):
    dep2head  the dependent's row points at its head (Clark's main direction);
    head2dep  the head's row points at the dependent;
    visible   for causal decoders: each arc is judged from the LATER of its two words, whose row can
              see the earlier one (a decoder word cannot attend to later words).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.relations.alignment import align_subwords
from pipeline.relations.words import prefix_token
from pipeline.text.conllu import ConlluDocument, read_conllu_documents
from pipeline.types import DEPENDENCY_RELATIONS

RELATIONS: tuple[str, ...] = DEPENDENCY_RELATIONS
"""The UD relations evaluated; a relation matches the gold DEPREL exactly (``obl`` excludes
``obl:tmod``, ``aux`` excludes ``aux:pass``, ``nsubj`` excludes ``nsubj:pass``)."""
ALL = "all"
REL_ALL: tuple[str, ...] = RELATIONS + (ALL,)
SKIPPED_DEPRELS = ("punct", "root")
SELECT, HELDOUT = 0, 1


@dataclass
class EvalSentence:
    """One sentence aligned to the tokenizer.

    Attributes:
        doc: index of its document in the corpus; split: SELECT or HELDOUT.
        spans: (start, end) of each surface word in ``text``.
        ids: subword ids fed to the model (special tokens included).
        members: members[u] = the subword positions of surface word u (empty: not aligned).
        arcs: (relation index or -1, dependent word, head word) local surface indices; punct/root
            dependents and arcs inside one surface word are left out.
        deprels: the deprels of the gold words in each surface word (for gate targets).
    """

    doc: int
    split: int
    sent_id: str
    text: str
    spans: list[tuple[int, int]]
    ids: list[int]
    members: list[list[int]]
    arcs: list[tuple[int, int, int]]
    n_skipped: int = 0

    @property
    def n_words(self) -> int:
        return len(self.spans)


def surface_words(tokens) -> tuple[list[tuple[int, int]], list[int]]:
    """Group gold words into surface words: consecutive words with the same non-empty span merge.

    Returns (spans, word_to_surface) with word_to_surface indexed by the gold word's position.
    """
    spans: list[tuple[int, int]] = []
    index: list[int] = []
    for t in tokens:
        span = (t.start_char, t.end_char)
        if spans and span == spans[-1] and span[0] < span[1]:
            index.append(len(spans) - 1)
        else:
            spans.append(span)
            index.append(len(spans) - 1)
    return spans, index


@dataclass
class Corpus:
    """Sentences of the selection and held-out parts, with flat per-word and per-arc arrays."""

    sentences: list[EvalSentence]
    source: str
    split_rule: str
    word_offset: np.ndarray = field(init=False)  # [n_sent + 1]
    arc_rel: np.ndarray = field(init=False)  # [n_arcs] relation index (-1: only in "all")
    arc_dep: np.ndarray = field(init=False)  # [n_arcs] global word index of the dependent
    arc_head: np.ndarray = field(init=False)
    arc_split: np.ndarray = field(init=False)
    word_split: np.ndarray = field(init=False)  # [n_words]
    word_sent: np.ndarray = field(init=False)
    word_valid: np.ndarray = field(init=False)  # aligned to >= 1 subword

    def __post_init__(self) -> None:
        n = [s.n_words for s in self.sentences]
        self.word_offset = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
        rel, dep, head, split = [], [], [], []
        for k, s in enumerate(self.sentences):
            off = self.word_offset[k]
            for r, d, h in s.arcs:
                rel.append(r)
                dep.append(off + d)
                head.append(off + h)
                split.append(s.split)
        self.arc_rel = np.array(rel, dtype=np.int64)
        self.arc_dep = np.array(dep, dtype=np.int64)
        self.arc_head = np.array(head, dtype=np.int64)
        self.arc_split = np.array(split, dtype=np.int64)
        self.word_split = np.repeat([s.split for s in self.sentences], n).astype(np.int64)
        self.word_sent = np.repeat(np.arange(len(self.sentences)), n).astype(np.int64)
        self.word_valid = np.array([len(m) > 0 for s in self.sentences for m in s.members], dtype=bool)

    @property
    def n_words(self) -> int:
        return int(self.word_offset[-1])

    @property
    def word_local(self) -> np.ndarray:
        return np.arange(self.n_words) - self.word_offset[self.word_sent]

    def arc_mask(self, rel: str, split: int | None) -> np.ndarray:
        """Arcs of relation ``rel`` ("all": every kept arc) in ``split`` (None: both)."""
        m = np.ones(len(self.arc_rel), dtype=bool) if rel == ALL else self.arc_rel == RELATIONS.index(rel)
        return m if split is None else m & (self.arc_split == split)

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for rel in REL_ALL:
            out[rel] = {
                "select": int(self.arc_mask(rel, SELECT).sum()),
                "heldout": int(self.arc_mask(rel, HELDOUT).sum()),
            }
        return out

    def documents(self, split: int) -> set[int]:
        return {s.doc for s in self.sentences if s.split == split}


def _sentence(doc_idx, split, sentence, tokenizer, prefix: int | None, max_tokens: int) -> EvalSentence:
    spans, index = surface_words(sentence.tokens)
    enc = tokenizer(
        sentence.text, return_offsets_mapping=True, add_special_tokens=True, truncation=True, max_length=max_tokens
    )
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    if prefix is not None:
        ids = [prefix] + ids
        offsets = [(0, 0)] + offsets
    members = align_subwords(sentence.text, offsets, spans)
    arcs = []
    skipped = 0
    by_id = {t.id: n for n, t in enumerate(sentence.tokens)}
    for n, t in enumerate(sentence.tokens):
        if t.deprel in SKIPPED_DEPRELS or t.head == 0 or t.head not in by_id:
            continue
        d, h = index[n], index[by_id[t.head]]
        if d == h or not members[d] or not members[h]:
            skipped += 1
            continue
        rel = RELATIONS.index(t.deprel) if t.deprel in RELATIONS else -1
        arcs.append((rel, d, h))
    return EvalSentence(doc_idx, split, sentence.sent_id, sentence.text, spans, ids, members, arcs, skipped)


def _take_sentences(docs: list[ConlluDocument], max_sentences: int | None) -> list[ConlluDocument]:
    if max_sentences is None:
        return docs
    out, n = [], 0
    for d in docs:
        if n >= max_sentences:
            break
        take = d.sentences[: max_sentences - n]
        out.append(ConlluDocument(d.id, list(take)))
        n += len(take)
    return out


def build_corpus(
    conllu_path, tokenizer, causal: bool, select_on=None, max_sentences: int | None = None, max_tokens: int = 512
) -> Corpus:
    """Read the gold data and split it.

    Without ``select_on``: documents of ``conllu_path`` alternate, even-numbered (0, 2, ...) to the
    selection part, odd-numbered to the held-out part, so no document is on both sides. With
    ``select_on``: all of that file is the selection part and all of ``conllu_path`` is held out.
    ``max_sentences`` keeps the first N sentences of each file (whole documents until the cut).
    """
    prefix = prefix_token(tokenizer, causal)
    sentences: list[EvalSentence] = []
    if select_on is None:
        docs = _take_sentences(list(read_conllu_documents(conllu_path)), max_sentences)
        for k, d in enumerate(docs):
            split = SELECT if k % 2 == 0 else HELDOUT
            sentences.extend(_sentence(k, split, s, tokenizer, prefix, max_tokens) for s in d.sentences)
        rule = "documents alternate: even-numbered documents select units, odd-numbered ones score them"
        source = str(conllu_path)
    else:
        sel = _take_sentences(list(read_conllu_documents(select_on)), max_sentences)
        held = _take_sentences(list(read_conllu_documents(conllu_path)), max_sentences)
        for k, d in enumerate(sel):
            sentences.extend(_sentence(k, SELECT, s, tokenizer, prefix, max_tokens) for s in d.sentences)
        for k, d in enumerate(held):
            sentences.extend(_sentence(len(sel) + k, HELDOUT, s, tokenizer, prefix, max_tokens) for s in d.sentences)
        rule = f"units selected on all of {select_on}, scored on all of {conllu_path}"
        source = f"{conllu_path} (selection: {select_on})"
    return Corpus(sentences, source, rule)


def directions(causal: bool) -> tuple[str, ...]:
    """The directions arcs are judged in: ``visible`` for a decoder, else dependent->head and head->dependent."""
    return ("visible",) if causal else ("dep2head", "head2dep")


def arc_query_target(corpus: Corpus, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """For each arc: the global index of the querying word and the local index it must point at."""
    local = corpus.word_local
    if direction == "dep2head":
        return corpus.arc_dep, local[corpus.arc_head]
    if direction == "head2dep":
        return corpus.arc_head, local[corpus.arc_dep]
    if direction == "visible":
        later = np.maximum(corpus.arc_dep, corpus.arc_head)
        earlier = np.minimum(corpus.arc_dep, corpus.arc_head)
        return later, local[earlier]
    raise ValueError(f"unknown direction {direction!r}")


def gold_arc_sets(corpus: Corpus) -> tuple[set[tuple[int, int, int]], set[tuple[int, int]]]:
    """Directed labelled arcs {(rel_idx, dep, head)} and undirected unlabelled {(min, max)} (global)."""
    lab = set(zip(corpus.arc_rel.tolist(), corpus.arc_dep.tolist(), corpus.arc_head.tolist()))
    unl = set(
        zip(np.minimum(corpus.arc_dep, corpus.arc_head).tolist(), np.maximum(corpus.arc_dep, corpus.arc_head).tolist())
    )
    return lab, unl
