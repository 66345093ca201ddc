"""Two baselines for fact extraction that ``qkgraph eval-facts`` scores beside qkgraph's own facts.

Both yield ``pipeline.relations.facts.WordFact`` records over the words of ``document_words(doc)``
(indices into that list), in the format the evaluation matches against gold facts on (subject word,
predicate word, preposition word, object word). Subject and object are the *head word* of a node span:
the syntactic root (spaCy ``Span.root``) of the span's tokens. The node spans are the product's
(``pipeline.text.spans.document_spans``): entities, noun chunks outside entities, pronoun chunks, but
no single-word nodes (``word_pos=()``), because those would turn verbs, the relations themselves, into
nodes.

**Proximity** (``proximity_facts``). For every verb (POS ``VERB``, or a form of *be* tagged ``AUX``
that is not an auxiliary of another verb, i.e. not ``aux``/``auxpass``), the nearest span ending
before it in its sentence is the subject and the nearest span starting after it the object. If an
``ADP`` word lies between the verb and the object (the one closest to the object, the object's case
word), the fact is oblique with that preposition, else action; a *be* predicate makes it copula
(with the preposition, if any: "She is in Paris"). Probability 1.0: there is nothing to sweep.

**MAMA** (Wang, Liu and Song 2020, "Language Models are Open Knowledge Graphs", arXiv:2010.11967).
MAMA builds a knowledge graph with one forward pass of a pre-trained LM in two stages. *Match*: for
each sentence, noun chunks are the candidate heads and tails; for each (head, tail) pair with the head
before the tail, a beam search over the sentence's attention matrix (one layer, averaged over heads)
walks from the head through tokens between the two to the tail; the tokens on the path form the
relation and the *matching degree* is the sum of the attention weights along the path. A candidate fact
(head, relation, tail) is kept when (1) its matching degree is above a threshold, (2) its relation
is frequent enough over the corpus, and (3) its relation is a contiguous sequence of the sentence.
*Map* then links heads and tails to Wikidata entities and relations to Wikidata properties (or keeps
them unmapped, as an open schema).

What is implemented here is the Match stage, split so its tunables can be chosen on a selection
corpus: ``mama_candidates`` (the expensive part: attention and beam search, done once) and
``mama_facts`` (the thresholds, cheap to sweep). Deviations from the paper:

* **No Map stage**: there is no entity or relation linking (no Wikidata); relations stay open text,
  lemmatised as in the paper's relation normalisation (the lemma of each path word, lowercased).
* **Model and layer**: the default model (all-MiniLM-L6-v2, a 6-layer BERT) and by default its last
  layer (the paper reads one layer's head-averaged attention); ``default_attention_fn(layer=...)``
  takes another.
* **Direction**: the step from an earlier word ``i`` to a later word ``j`` scores ``A[j, i]``, the
  attention of the later word (query) to the earlier one (key). This is the only direction a causal
  LM (GPT-2, the paper's other model family) has, so a left-to-right search over a causal matrix
  must read it; BERT's bidirectional matrix is read the same way for comparability (``A[i, j]``,
  the earlier word's attention to the later, is ignored).
* **Words, not subwords**: attention is aggregated to spaCy words (the evaluation's units) before
  the search: a word's row is the *mean* of its subwords' rows (each subword is one query; the word
  asks what they ask on average) and a word's column the *sum* of its subwords' columns (attention
  mass landing anywhere on the word). Rows then sum to at most 1 (mass on [CLS]/[SEP] is dropped).
  A multi-word chunk is one node in the same way: attention *to* the head chunk sums the columns of
  its words; attention *from* the tail chunk averages the rows of its words.
* **What a path may cross**: the relation words are words strictly between the two chunks that are
  in no other node span and are not punctuation, so a relation never contains another entity or
  chunk; a relation has at least one word (a pair with nothing between them gives no candidate).
* **Constraint (3)** is checked after the search (``MamaCandidate.contiguous``), as the paper states
  it as a filter on candidates, and ``mama_facts(contiguous=...)`` can switch it off.
* **Frequency (2)** counts, per relation string, the pairs whose best candidate (the highest degree
  among those the other structural constraint admits) has that relation, over the whole candidate
  set given to ``mama_facts``, before the degree threshold, so the two thresholds act independently.
* ``mama_candidates`` records the ≤ ``beam`` best finished paths of each pair (``rank`` 0 = best);
  ``mama_facts`` keeps one fact per pair, its best path that passes constraint (3).
* The matching degree is a plain sum, as in the paper, so it grows with the path's length and is not
  comparable across pairs at different distances; it is not normalised here.

The path is mapped to the evaluation's format: ``predicate_word`` = the first VERB/AUX word on the
path (else the first path word); ``preposition`` = the last ADP on the path after the predicate word
(else -1); ``kind`` = copula when the predicate word's lemma is *be* and no other path word is a VERB,
else oblique with a preposition, else action; ``probability`` = the matching degree.

Cost: ``python bench/fact_baselines.py [--sentences N]`` times ``mama_candidates`` on the first
documents of UD English EWT dev. On 2 shared CPU cores (load average 5-6), 295 sentences (5835
words) took 18-26 s, 60-90 ms per sentence, of which the forward passes are all but ~1 s (the beam
search is ~3 ms per sentence); add ~5 s to load the model when it is not passed in.
Measured on 40 EWT dev documents (20 selection, 20 scored, 792 sentences) with the evaluation's
matching: proximity P 0.25 / R 0.39 / F1 0.30; MAMA P 0.045 / R 0.28 / F1 0.077 at the best
selection point (min_degree 0, min_frequency 1): the matching degree barely separates right from
wrong facts (AUC 0.41-0.52 over layers 0-5, F1 0.071-0.085), and its values lie in 0-0.6.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

import numpy as np

from pipeline.relations.facts import WordFact
from pipeline.text.spans import SpanOptions, document_spans
from pipeline.types import FactKind

NODE_SPANS = SpanOptions(word_pos=())
"""Entities, noun chunks and pronouns: the product's node spans without single-word nodes."""

DEFAULT_BEAM = 6


# ── spans as words ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class NodeSpan:
    """A node span in word indices (``document_words`` order): first and last word, head word, sentence."""

    first: int
    last: int
    head: int
    sent: int
    text: str


def _word_index(doc: Any) -> dict[int, int]:
    """spaCy token index -> word index (``document_words`` skips whitespace tokens)."""
    index: dict[int, int] = {}
    for t in doc:
        if not t.is_space:
            index[t.i] = len(index)
    return index


def node_spans(doc: Any, spans: Sequence[Any] | None = None, doc_id: str = "doc") -> list[NodeSpan]:
    """The node spans of ``doc`` in word indices, ordered by position.

    ``spans``: ``pipeline.types.Span`` records (char offsets); default ``document_spans(doc, NODE_SPANS,
    doc_id)``. The head word is the root of the span's tokens (the last word when spaCy cannot align).
    """
    if spans is None:
        spans = document_spans(doc, NODE_SPANS, doc_id=doc_id)[1]
    index = _word_index(doc)
    out: list[NodeSpan] = []
    for sp in spans:
        chunk = doc.char_span(sp.start_char, sp.end_char, alignment_mode="expand")
        if chunk is None:
            continue
        words = [index[t.i] for t in chunk if t.i in index]
        if not words:
            continue
        root = chunk.root
        head = index.get(root.i, words[-1])
        out.append(NodeSpan(words[0], words[-1], head, sp.sent_index, chunk.text))
    out.sort(key=lambda s: (s.first, s.last))
    return out


def _tokens(doc: Any) -> list[Any]:
    """The doc's non-whitespace tokens, so that position == word index."""
    return [t for t in doc if not t.is_space]


def _sent_of_word(doc: Any) -> list[int]:
    out: list[int] = []
    for si, sent in enumerate(doc.sents):
        out.extend(si for t in sent if not t.is_space)
    return out


# ── proximity ───────────────────────────────────────────────────────────────────────────────────


def _is_predicate(token: Any) -> bool:
    if token.pos_ == "VERB":
        return True
    # "Curie was a physicist": spaCy tags the copula AUX; an auxiliary ("was founded") is not a predicate
    return token.pos_ == "AUX" and token.lemma_ == "be" and token.dep_ not in ("aux", "auxpass")


def proximity_facts(doc: Any, spans: Sequence[Any] | None = None, doc_id: str = "doc") -> list[WordFact]:
    """Facts of the proximity rule (module docstring) for one parsed ``doc``, in word order.

    ``spans``: node spans as ``pipeline.types.Span`` (default: ``document_spans`` with ``NODE_SPANS``).
    """
    tokens = _tokens(doc)
    sents = _sent_of_word(doc)
    nodes = node_spans(doc, spans, doc_id)
    out: list[WordFact] = []
    for v, token in enumerate(tokens):
        if not _is_predicate(token):
            continue
        s = sents[v]
        before = [n for n in nodes if n.sent == s and n.last < v]
        after = [n for n in nodes if n.sent == s and n.first > v]
        if not before or not after:
            continue
        subj = max(before, key=lambda n: n.last)
        obj = min(after, key=lambda n: n.first)
        adps = [i for i in range(v + 1, obj.first) if tokens[i].pos_ == "ADP"]
        prep = adps[-1] if adps else -1  # the one nearest the object: its case word
        be = token.lemma_ == "be"
        verb = "be" if be else (token.lemma_ or token.text).casefold()
        predicate = f"{verb} {tokens[prep].text.casefold()}" if prep >= 0 else verb
        kind: FactKind = "copula" if be else ("oblique" if prep >= 0 else "action")
        out.append(WordFact(subj.head, obj.head, v, prep, predicate, kind, 1.0, ()))
    return out


# ── MAMA: attention ─────────────────────────────────────────────────────────────────────────────


class AttentionFn(Protocol):
    """Maps a sentence (a spaCy ``Span``) to its word attention matrix [n_words, n_words] (float).

    ``n_words`` = the sentence's non-whitespace tokens; ``A[q, k]`` = attention of word q to word k.
    """

    def __call__(self, sentence: Any) -> np.ndarray: ...


class WordAttention:
    """Word-level attention of one layer of a loaded model, averaged over its heads.

    Call it on one sentence, or ``many`` on a list (batched forward passes). Subwords are aggregated to
    words as the module docstring says (rows averaged, columns summed). A sentence longer than
    ``max_length`` subwords is truncated; its words beyond have zero rows and columns. ``model`` must
    return attentions (loaded with ``attn_implementation="eager"``, as ``load_model`` does) and
    ``tokenizer`` must be a fast tokenizer (character offsets).
    """

    def __init__(
        self, model: Any, tokenizer: Any, layer: int = -1, batch_size: int = 32, max_length: int = 512
    ) -> None:
        import torch

        self.model, self.tokenizer = model, tokenizer
        n_layers = int(model.config.num_hidden_layers)
        self.layer = layer if layer >= 0 else n_layers + layer
        if not 0 <= self.layer < n_layers:
            raise ValueError(f"layer must be in [{-n_layers}, {n_layers - 1}], got {layer}")
        # a tokenizer without a pad token (causal LMs) cannot batch: one sentence per pass then
        self.batch_size = batch_size if getattr(tokenizer, "pad_token", None) is not None else 1
        self.max_length = max_length
        self._torch = torch

    def __call__(self, sentence: Any) -> np.ndarray:
        return self.many([sentence])[0]

    def many(self, sentences: Sequence[Any]) -> list[np.ndarray]:
        """Word attention matrices of several sentences (spaCy Spans), in order."""
        # batches of similar length: padding costs a forward pass as much as real tokens do
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].text))
        out: list[np.ndarray | None] = [None] * len(sentences)
        for i in range(0, len(order), self.batch_size):
            chunk = order[i : i + self.batch_size]
            for j, att in zip(chunk, self._batch([sentences[j] for j in chunk])):
                out[j] = att
        return out  # type: ignore[return-value]

    def _batch(self, sentences: Sequence[Any]) -> list[np.ndarray]:
        torch = self._torch
        texts = [s.text for s in sentences]
        enc = self.tokenizer(
            texts,
            return_offsets_mapping=True,
            padding=len(texts) > 1,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping")
        device = next(self.model.parameters()).device
        with torch.no_grad():
            result = self.model(**{k: v.to(device) for k, v in enc.items()}, output_attentions=True)
        att = result.attentions[self.layer].float().mean(1).cpu().numpy()  # [B, T, T]: mean over heads
        out = []
        for b, sent in enumerate(sentences):
            words = [(t.idx - sent.start_char, t.idx - sent.start_char + len(t.text)) for t in sent if not t.is_space]
            member = np.zeros((len(words), att.shape[-1]), dtype=np.float32)
            for pos, (a, e) in enumerate(offsets[b].tolist()):
                if a >= e:
                    continue  # [CLS], [SEP], padding
                for w, (ws, we) in enumerate(words):
                    if ws < e and a < we:
                        member[w, pos] = 1.0
            counts = member.sum(1, keepdims=True)
            rows = (member @ att[b]) / np.maximum(counts, 1.0)  # mean over the word's subword queries
            out.append(rows @ member.T)  # sum over the word's subword keys
        return out


def default_attention_fn(models: Any = None, layer: int = -1, batch_size: int = 32) -> WordAttention:
    """Word attention of layer ``layer`` (default the last), mean over heads, of the default model.

    ``models``: an already loaded model to reuse instead of loading the default one: an
    ``ingest.models.Models`` (its ``extractor``), a ``KnowledgeGraphExtractor`` or a ``LoadedModel``
    (anything with ``model`` and ``tokenizer``).
    """
    source = getattr(models, "extractor", models)
    if source is None:
        from pipeline.model.adapters import load_model

        source = load_model(None)  # eager attention: output_attentions needs it in transformers 5.x
    return WordAttention(source.model, source.tokenizer, layer=layer, batch_size=batch_size)


# ── MAMA: match ─────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class MamaCandidate:
    """One path of the final beam between a head and a tail chunk of a sentence.

    ``doc``: index of the document in the ``docs`` given to ``mama_candidates``; word indices are into
    that document's ``document_words``. ``head``/``tail``: head words of the two chunks; ``path``: the
    relation words in order; ``relation``: their lemmas, lowercased, space-joined; ``degree``: the
    matching degree (sum of attention along head -> path -> tail); ``rank``: 0 for the pair's best path;
    ``contiguous``: the path words are adjacent in the sentence (the paper's constraint 3);
    ``predicate_word``, ``preposition``, ``kind``: the path mapped to the evaluation's format.
    """

    doc: int
    sent: int
    head: int
    tail: int
    path: tuple[int, ...]
    relation: str
    degree: float
    rank: int
    contiguous: bool
    predicate_word: int
    preposition: int
    kind: FactKind


class MamaCandidates(list[MamaCandidate]):
    """The candidates of ``mama_candidates``: a list that also knows how many documents were searched
    (``n_docs``), so ``mama_facts`` returns one list per document, documents without candidates too."""

    def __init__(self, items: Iterable[MamaCandidate] = (), n_docs: int = 0) -> None:
        super().__init__(items)
        self.n_docs = n_docs


def _beam_search(
    att: np.ndarray, head: NodeSpan, tail: NodeSpan, allowed: Sequence[int], offset: int, beam: int
) -> list[tuple[float, tuple[int, ...]]]:
    """The best ≤ ``beam`` (degree, path) from ``head`` to ``tail`` through ``allowed`` words.

    ``att`` is the sentence's word attention; word indices are document-level, ``offset`` the index of
    the sentence's first word. Scores follow the direction convention: step i -> j adds att[j, i].
    """
    h = slice(head.first - offset, head.last + 1 - offset)
    t = slice(tail.first - offset, tail.last + 1 - offset)
    # attention to the head chunk: summed over its words (columns); from the tail: averaged (rows)
    from_head = {w: float(att[w - offset, h].sum()) for w in allowed}
    tail_rows = att[t].mean(0)
    into_tail = {w: float(tail_rows[w - offset]) for w in allowed}
    frontier: list[tuple[float, tuple[int, ...]]] = [(from_head[w], (w,)) for w in allowed]
    frontier = sorted(frontier, key=lambda c: -c[0])[:beam]
    finished: list[tuple[float, tuple[int, ...]]] = []
    while frontier:
        grown: list[tuple[float, tuple[int, ...]]] = []
        for score, path in frontier:
            last = path[-1]
            finished.append((score + into_tail[last], path))
            for w in allowed:
                if w > last:
                    grown.append((score + float(att[w - offset, last - offset]), (*path, w)))
        frontier = sorted(grown, key=lambda c: -c[0])[:beam]
        # attention is non-negative, so a longer path never scores less than its prefix: the search
        # runs until no path can grow, and only the best ``beam`` finished paths are kept
        finished = sorted(finished, key=lambda c: (-c[0], c[1]))[:beam]
    return finished


def _map_path(tokens: Sequence[Any], path: Sequence[int]) -> tuple[int, int, FactKind]:
    """(predicate word, preposition, kind) of a relation path (module docstring)."""
    verbs = [w for w in path if tokens[w].pos_ in ("VERB", "AUX")]
    pred = verbs[0] if verbs else (path[0] if path else -1)
    adps = [w for w in path if w > pred and tokens[w].pos_ == "ADP"]
    prep = adps[-1] if adps else -1
    be = pred >= 0 and tokens[pred].lemma_ == "be"
    if be and not any(tokens[w].pos_ == "VERB" for w in path if w != pred):
        kind: FactKind = "copula"
    else:
        kind = "oblique" if prep >= 0 else "action"
    return pred, prep, kind


def mama_candidates(
    docs: Iterable[Any],
    attention_fn: AttentionFn | Callable[[Any], np.ndarray],
    beam: int = DEFAULT_BEAM,
    spans: Sequence[Sequence[Any] | None] | None = None,
    doc_ids: Sequence[str] | None = None,
) -> MamaCandidates:
    """MAMA's Match search over parsed ``docs``: for every sentence, every pair of node spans (head
    before tail), the ≤ ``beam`` best paths of a beam search of width ``beam`` (module docstring).

    ``attention_fn``: sentence -> word attention (``default_attention_fn()``); when it has a ``many``
    method, all sentences (of all documents) go to it in one call. ``spans``/``doc_ids``: per document, as for
    ``node_spans`` (default: the product's node spans, ids ``doc0``, ``doc1``, ...).
    """
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    docs = list(docs)
    prepared: list[tuple[list[NodeSpan], list[int], list[int], int]] = []
    wanted: list[Any] = []
    for d, doc in enumerate(docs):
        doc_id = doc_ids[d] if doc_ids is not None else f"doc{d}"
        nodes = node_spans(doc, spans[d] if spans is not None else None, doc_id)
        sents = list(doc.sents)
        firsts: list[int] = []
        n = 0
        for sent in sents:
            firsts.append(n)
            n += sum(1 for t in sent if not t.is_space)
        # sentences with fewer than two nodes need no attention
        todo = [si for si in range(len(sents)) if sum(1 for x in nodes if x.sent == si) >= 2]
        prepared.append((nodes, firsts, todo, len(wanted)))
        wanted.extend(sents[si] for si in todo)
    # one call for all sentences of all documents, so batches are full and of similar length
    many = getattr(attention_fn, "many", None)
    all_atts = many(wanted) if many is not None else [attention_fn(s) for s in wanted]
    out: list[MamaCandidate] = []
    for d, (doc, (nodes, firsts, todo, at)) in enumerate(zip(docs, prepared)):
        tokens = _tokens(doc)
        atts = all_atts[at : at + len(todo)]
        in_node = set()
        for x in nodes:
            in_node.update(range(x.first, x.last + 1))
        for si, att in zip(todo, atts):
            sent_nodes = [x for x in nodes if x.sent == si]
            for hi, head in enumerate(sent_nodes):
                for tail in sent_nodes[hi + 1 :]:
                    if tail.first <= head.last:
                        continue  # overlapping spans
                    allowed = [
                        w for w in range(head.last + 1, tail.first) if w not in in_node and not tokens[w].is_punct
                    ]
                    if not allowed:
                        continue
                    found = _beam_search(att, head, tail, allowed, firsts[si], beam)
                    for rank, (degree, path) in enumerate(found):
                        pred, prep, kind = _map_path(tokens, path)
                        relation = " ".join((tokens[w].lemma_ or tokens[w].text).casefold() for w in path)
                        contiguous = all(y == x + 1 for x, y in pairwise(path))
                        out.append(
                            MamaCandidate(
                                d, si, head.head, tail.head, path, relation, degree, rank, contiguous, pred, prep, kind
                            )
                        )
    return MamaCandidates(out, n_docs=len(docs))


def mama_facts(
    candidates: Iterable[MamaCandidate],
    min_degree: float = 0.0,
    min_frequency: int = 1,
    contiguous: bool = True,
    n_docs: int | None = None,
) -> list[list[WordFact]]:
    """Per document, the facts of the candidates that pass MAMA's constraints (module docstring).

    Per (document, head, tail) pair the best candidate (lowest rank) that is contiguous (when
    ``contiguous``) is the pair's fact; it is kept when its degree is ≥ ``min_degree`` and its
    relation is the best of ≥ ``min_frequency`` pairs over all ``candidates``. ``n_docs``: length of
    the result (default: the ``MamaCandidates.n_docs`` of ``candidates``, else one past the last
    document with a candidate). The probability is the degree.
    """
    known = getattr(candidates, "n_docs", None)
    best: dict[tuple[int, int, int], MamaCandidate] = {}
    for c in candidates:
        if contiguous and not c.contiguous:
            continue
        key = (c.doc, c.head, c.tail)
        kept = best.get(key)
        if kept is None or c.rank < kept.rank:
            best[key] = c
    frequency = Counter(c.relation for c in best.values())
    if n_docs is None:
        n_docs = known if known is not None else 1 + max((c.doc for c in best.values()), default=-1)
    size = n_docs
    out: list[list[WordFact]] = [[] for _ in range(size)]
    for c in sorted(best.values(), key=lambda c: (c.doc, c.head, c.tail)):
        if c.degree < min_degree or frequency[c.relation] < min_frequency or c.doc >= size:
            continue
        out[c.doc].append(WordFact(c.head, c.tail, c.predicate_word, c.preposition, c.relation, c.kind, c.degree, ()))
    return out


# ── cost ────────────────────────────────────────────────────────────────────────────────────────


def main() -> None:
    """Time ``mama_candidates`` (and proximity) on the first sentences of UD English EWT dev."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pathlib import Path

    from pipeline.text.conllu import read_conllu_documents
    from pipeline.text.nlp import load_spacy

    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--conllu", default=str(default))
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM)
    args = parser.parse_args()

    texts, n = [], 0
    for document in read_conllu_documents(args.conllu):
        texts.append(document.text)
        n += len(document.sentences)
        if n >= args.sentences:
            break
    nlp = load_spacy()
    t0 = time.perf_counter()
    docs = list(nlp.pipe(texts))
    t_parse = time.perf_counter() - t0
    n_sents = sum(len(list(d.sents)) for d in docs)
    n_words = sum(1 for d in docs for t in d if not t.is_space)
    t0 = time.perf_counter()
    fn = default_attention_fn()
    t_load = time.perf_counter() - t0
    spent = [0.0]

    class Timed:
        """The attention function, timing its forward passes apart from the search."""

        def many(self, sentences: Sequence[Any]) -> list[np.ndarray]:
            t = time.perf_counter()
            try:
                return fn.many(sentences)
            finally:
                spent[0] += time.perf_counter() - t

    t0 = time.perf_counter()
    cands = mama_candidates(docs, Timed(), beam=args.beam)  # type: ignore[arg-type]
    t_mama = time.perf_counter() - t0
    t0 = time.perf_counter()
    prox = [proximity_facts(d) for d in docs]
    t_prox = time.perf_counter() - t0
    facts = mama_facts(cands, n_docs=len(docs))
    print(
        f"{len(docs)} documents, {n_sents} spaCy sentences, {n_words} words; parse {t_parse:.1f}s, model load {t_load:.1f}s"
    )
    print(
        f"mama_candidates (beam {args.beam}): {t_mama:.2f}s = {1000 * t_mama / n_sents:.1f} ms/sentence, "
        f"(attention {spent[0]:.2f}s, search {t_mama - spent[0]:.2f}s), "
        f"{len(cands)} candidates, {sum(map(len, facts))} facts at no threshold"
    )
    print(f"proximity_facts: {t_prox:.2f}s, {sum(map(len, prox))} facts")


if __name__ == "__main__":
    main()
