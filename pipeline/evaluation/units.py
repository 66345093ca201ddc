"""Word-level units for the dependency evaluation (Clark et al. 2019's protocol) and their predictions.

A *unit* maps every word of a sentence to one other word of it (its predicted partner): a fixed offset,
a raw attention head, a head's full logits, a rank-k truncation of a head's QK circuit, one rank-1
component, or a set of components assembled across the heads of a layer. Predictions are made at the
level of *surface words*: the gold words of a CoNLL-U sentence grouped by their span in the text (the
members of a multiword token such as ``do`` + ``n't`` share one surface span, hence one surface word).

Subword -> word pooling (Clark et al.):
    attention TO a word is the sum over its subwords; attention FROM a word is the mean over its
    subwords:  A_w = M_avg A M_sum^T  (M_sum[u, t] = 1 when subword t lies in word u; M_avg = M_sum
    with rows normalised to 1). Logits are pooled by the mean on both sides: L_w = M_avg L M_avg^T.
A subword belongs to every word its character span overlaps (whitespace trimmed), so a BPE piece
such as ``),`` counts for both ``)`` and ``,``; a word no subword overlaps is left out (no arcs).

Directions (per unit and relation):
    dep2head  the dependent's row points at its head (Clark's main direction);
    head2dep  the head's row points at the dependent;
    visible   for causal decoders: each arc is judged from the LATER of its two words, whose row can
              see the earlier one (a decoder word cannot attend to later words).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.model.activations import Activations
from pipeline.model.rope import apply_rope
from pipeline.text.conllu import ConlluDocument, read_conllu_documents

RELATIONS: tuple[str, ...] = (
    "nsubj",
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
)
"""The UD relations evaluated; a relation matches the gold DEPREL exactly (``obl`` excludes
``obl:tmod``, ``aux`` excludes ``aux:pass``, ``nsubj`` excludes ``nsubj:pass``)."""
ALL = "all"
REL_ALL: tuple[str, ...] = RELATIONS + (ALL,)
SKIPPED_DEPRELS = ("punct", "root")
OFFSETS = (-3, -2, -1, 1, 2, 3)
SELECT, HELDOUT = 0, 1


# --------------------------------------------------------------------------------------------------
# Corpus: surface words, gold arcs, subword alignment
# --------------------------------------------------------------------------------------------------


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


def align_subwords(text: str, offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """members[u] = subword positions whose (whitespace-trimmed) span overlaps surface word u."""
    members: list[list[int]] = [[] for _ in spans]
    starts = [s for s, _ in spans]
    for pos, (a, b) in enumerate(offsets):
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a >= b:
            continue  # special token or pure whitespace
        # surface words are sorted by start; scan the few that can overlap
        lo = max(0, int(np.searchsorted(starts, a, side="right")) - 1)
        for u in range(lo, len(spans)):
            s, e = spans[u]
            if s >= b:
                break
            if max(a, s) < min(b, e):
                members[u].append(pos)
    return members


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


def prefix_token(tokenizer, causal: bool) -> int | None:
    """For a decoder whose tokenizer adds no special token: the id prepended as an attention sink
    (``<|endoftext|>`` if the vocabulary has it, else BOS, else EOS); None for encoders."""
    if not causal:
        return None
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    if len(probe) != len(tokenizer("a", add_special_tokens=False)["input_ids"]):
        return None  # the tokenizer already adds its own BOS
    vocab = tokenizer.get_vocab()
    for candidate in ("<|endoftext|>",):
        if candidate in vocab:
            return int(vocab[candidate])
    for tid in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if tid is not None:
            return int(tid)
    return None


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


# --------------------------------------------------------------------------------------------------
# Pooling and batches
# --------------------------------------------------------------------------------------------------


@dataclass
class WordBatch:
    """A padded batch of sentences and its subword -> word pooling.

    Shapes: ids, mask [B, T]; m_sum, m_avg [B, U, T]; cand [B, U, U] (j is a candidate partner of
    i: both aligned, j != i, and j < i for a decoder); gidx: flat global word index of each
    (b, u) with u < n_words[b], in order; bidx, uidx: the (b, u) of each.
    """

    sent: list[int]
    ids: torch.Tensor
    mask: torch.Tensor
    m_sum: torch.Tensor
    m_avg: torch.Tensor
    cand: torch.Tensor
    bidx: torch.Tensor
    uidx: torch.Tensor
    gidx: torch.Tensor


def pool_to(att: torch.Tensor, wb: WordBatch) -> torch.Tensor:
    """Attention-like [..., B, T, T] -> word level [..., B, U, U]: mean over FROM subwords, sum over TO subwords."""
    return torch.einsum("but,...bts,bvs->...buv", wb.m_avg, att, wb.m_sum)


def pool_mean(logits: torch.Tensor, wb: WordBatch) -> torch.Tensor:
    """Logit-like [..., B, T, T] -> word level [..., B, U, U]: mean over the subwords on both sides."""
    return torch.einsum("but,...bts,bvs->...buv", wb.m_avg, logits, wb.m_avg)


def word_pooling(
    members: list[list[list[int]]], T: int, causal: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(m_sum, m_avg, cand) for a batch given members[b][u] = subword positions."""
    B = len(members)
    U = max(len(m) for m in members)
    m_sum = torch.zeros(B, U, T)
    valid = torch.zeros(B, U, dtype=torch.bool)
    for b, words in enumerate(members):
        for u, pos in enumerate(words):
            if pos:
                m_sum[b, u, pos] = 1.0
                valid[b, u] = True
    m_avg = m_sum / m_sum.sum(-1, keepdim=True).clamp(min=1.0)
    cand = valid[:, :, None] & valid[:, None, :] & ~torch.eye(U, dtype=torch.bool)[None]
    if causal:
        cand = cand & torch.ones(U, U, dtype=torch.bool).tril(-1)[None]
    return m_sum, m_avg, cand


def batches(corpus: Corpus, causal: bool, budget: int = 3000, only: np.ndarray | None = None) -> Iterator[WordBatch]:
    """Length-sorted batches of at most ``budget`` padded subword tokens (B * T)."""
    order = [k for k in np.argsort([len(s.ids) for s in corpus.sentences], kind="stable") if only is None or only[k]]
    group: list[int] = []
    for k in order + [None]:
        if k is not None:
            T_new = len(corpus.sentences[k].ids)
            if not group or (len(group) + 1) * T_new <= budget:
                group.append(k)
                continue
        if not group:
            break
        yield _make_batch(corpus, group, causal)
        group = [k] if k is not None else []


def _make_batch(corpus: Corpus, group: list[int], causal: bool) -> WordBatch:
    sents = [corpus.sentences[k] for k in group]
    T = max(len(s.ids) for s in sents)
    ids = torch.zeros(len(sents), T, dtype=torch.long)
    mask = torch.zeros(len(sents), T, dtype=torch.long)
    for b, s in enumerate(sents):
        ids[b, : len(s.ids)] = torch.tensor(s.ids)
        mask[b, : len(s.ids)] = 1
    m_sum, m_avg, cand = word_pooling([s.members for s in sents], T, causal)
    bidx = torch.tensor([b for b, s in enumerate(sents) for _ in range(s.n_words)], dtype=torch.long)
    uidx = torch.tensor([u for s in sents for u in range(s.n_words)], dtype=torch.long)
    gidx = torch.tensor(
        [corpus.word_offset[k] + u for k, s in zip(group, sents) for u in range(s.n_words)], dtype=torch.long
    )
    return WordBatch(group, ids, mask, m_sum, m_avg, cand, bidx, uidx, gidx)


def masked_argmax(scores: torch.Tensor, wb: WordBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted partner (local word index, -1 when none) and its score, each [N, n_flat_words]."""
    s = scores.masked_fill(~wb.cand, float("-inf"))
    val, idx = s.max(-1)  # [N, B, U]
    idx = torch.where(torch.isfinite(val), idx, torch.full_like(idx, -1))
    return idx[:, wb.bidx, wb.uidx], val[:, wb.bidx, wb.uidx]


# --------------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One word-level predictor. method: offset | attention | logit | rank_k | component | assembled."""

    method: str
    id: str
    layer: int | None = None
    head: int | None = None
    k: int | None = None
    offset: int | None = None
    components: tuple[tuple[int, int], ...] = ()  # (head, component) pairs of ``assembled``


def _ranges(values: Sequence[int]) -> str:
    vals = sorted(values)
    parts, start = [], None
    for n, v in enumerate(vals):
        if start is None:
            start = v
        if n + 1 == len(vals) or vals[n + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ".".join(parts)


def assembled_id(layer: int, comps: Sequence[tuple[int, int]]) -> str:
    """``L3A:H2c0-31+H5c3.7``: components 0..31 of head 2 and 3, 7 of head 5 of layer 3, summed."""
    heads = sorted({h for h, _ in comps})
    return f"L{layer}A:" + "+".join(f"H{h}c" + _ranges([r for hh, r in comps if hh == h]) for h in heads)


def parse_assembled_id(uid: str) -> tuple[int, list[tuple[int, int]]]:
    """Inverse of ``assembled_id``."""
    layer_part, rest = uid.split("A:", 1)
    layer = int(layer_part[1:])
    comps = []
    for part in rest.split("+"):
        h, cs = part[1:].split("c", 1)
        for rng in cs.split("."):
            a, _, b = rng.partition("-")
            comps.extend((int(h), r) for r in range(int(a), int(b or a) + 1))
    return layer, comps


class HeadFactors:
    """The SVD factors of all heads of a layer, stacked, in float32 (for batched unit logits)."""

    def __init__(self, ex, layer: int) -> None:
        H = ex.adapter.n_heads
        cs = [ex.circuit(layer, h) for h in range(H)]
        b_q, b_k = ex._biases[layer]
        dt = torch.float32
        self.layer = layer
        self.U = torch.stack([c.U for c in cs]).to(dt)  # [H, d, r]
        self.V = torch.stack([c.V for c in cs]).to(dt)
        self.alpha = torch.stack([c.alpha for c in cs]).to(dt)  # [H, e, r]
        self.beta = torch.stack([c.beta for c in cs]).to(dt)
        self.sigma = torch.stack([c.sigma for c in cs]).to(dt)  # [H, r]
        self.b_q = b_q.to(dt)  # [H, e]
        self.b_k = torch.stack([b_k[ex.adapter.kv_head(h)] for h in range(H)]).to(dt)
        self.scale = ex.adapter.scaling(layer)
        self.energy_k = [c.truncation_rank(ex.energy, ex.min_rank) for c in cs]


def head_coordinates(hf: HeadFactors, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Query and key coordinates of every head's components, each [H, B, T, d_head]."""
    return torch.einsum("btd,hdr->hbtr", x, hf.U), torch.einsum("btd,hdr->hbtr", x, hf.V)


def prefix_logits(hf: HeadFactors, x: torch.Tensor, rotary, k: int, coords=None) -> torch.Tensor:
    """Scaled logits of every head's top-k truncation (biases, RoPE), [H, B, T, T]; equals the
    extractor's ``subspace_logits`` for ``subspace(layer, h, k=k)``. ``coords``: precomputed
    ``head_coordinates(hf, x)`` (saves the projections when several k are wanted)."""
    a, b = coords if coords is not None else head_coordinates(hf, x)
    a, b = a[..., :k], b[..., :k]
    q = torch.einsum("hbtr,her->hbte", a, hf.alpha[:, :, :k]) + hf.b_q[:, None, None, :]
    kk = torch.einsum("hbtr,her->hbte", b, hf.beta[:, :, :k]) + hf.b_k[:, None, None, :]
    if rotary is not None:
        q, kk = apply_rope(q, *rotary), apply_rope(kk, *rotary)
    return torch.einsum("hbie,hbje->hbij", q, kk) * hf.scale


def component_logits(
    hf: HeadFactors, x: torch.Tensor, rotary, head: int, comps: Sequence[int] | None = None
) -> torch.Tensor:
    """Scaled logits of each rank-1 component r of ``head`` as a subspace of its own, [R, B, T, T]:

        logit_r(i, j) = scale * (R_i (a_ir alpha_r + b_q)) . (R_j (b_jr beta_r + b_k))

    with a_ir = x_i.u_r, b_jr = x_j.v_r. Expanded into a_ir b_jr G_r(i,j) + a_ir H_r(i,j) + b_jr M_r(i,j)
    + N(i,j), where G, H, M, N depend on positions only (constants without RoPE), so no per-component
    head-space product over the batch is needed.
    """
    r_idx = torch.arange(hf.U.shape[-1]) if comps is None else torch.as_tensor(list(comps), dtype=torch.long)
    a = (x @ hf.U[head][:, r_idx]).permute(2, 0, 1)  # [R, B, T]
    b = (x @ hf.V[head][:, r_idx]).permute(2, 0, 1)
    al = hf.alpha[head][:, r_idx].T  # [R, e]
    be = hf.beta[head][:, r_idx].T
    bq, bk = hf.b_q[head], hf.b_k[head]
    if rotary is None:
        G = (al * be).sum(-1)[:, None, None, None]  # [R,1,1,1] (= sigma_r)
        Hq = (al @ bk)[:, None, None, None]
        Mk = (be @ bq)[:, None, None, None]
        N = bq @ bk
    else:
        cos, sin = rotary
        T = x.shape[1]
        c0, s0 = cos[:1, :T], sin[:1, :T]  # positions 0..T-1 (right padding): same for every row
        ral = apply_rope(al[:, None, None, :].expand(-1, 1, T, -1), c0, s0)[:, 0]  # [R, T, e]
        rbe = apply_rope(be[:, None, None, :].expand(-1, 1, T, -1), c0, s0)[:, 0]
        rbq = apply_rope(bq[None, None, :].expand(1, T, -1), c0, s0)[0]  # [T, e]
        rbk = apply_rope(bk[None, None, :].expand(1, T, -1), c0, s0)[0]
        G = torch.einsum("rie,rje->rij", ral, rbe)[:, None]  # [R,1,T,T]
        Hq = torch.einsum("rie,je->rij", ral, rbk)[:, None]
        Mk = torch.einsum("ie,rje->rij", rbq, rbe)[:, None]
        N = rbq @ rbk.T
    out = a[:, :, :, None] * b[:, :, None, :] * G + a[:, :, :, None] * Hq + b[:, :, None, :] * Mk + N
    return out * hf.scale


def assembled_logits(hf: HeadFactors, x: torch.Tensor, rotary, comps: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Sum of the rank-1 component logits of (head, r) pairs of one layer, [B, T, T]."""
    total = None
    for h in sorted({h for h, _ in comps}):
        rs = [r for hh, r in comps if hh == h]
        part = component_logits(hf, x, rotary, h, rs).sum(0)
        total = part if total is None else total + part
    return total


class ResidualCache:
    """The residuals (and RoPE cos/sin) of every batch of a pass, kept on disk in a temporary folder,
    so later passes over the same batches need no forward pass. One file per batch and layer."""

    def __init__(self) -> None:
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="qkgraph-eval-"))
        self.n = 0

    def save(self, i: int, acts: Activations) -> None:
        for l, x in acts.residuals.items():
            torch.save(x.detach().float().clone(), self.dir / f"{i}-{l}.pt")
        if acts.rotary is not None:
            torch.save((acts.rotary[0].float().clone(), acts.rotary[1].float().clone()), self.dir / f"{i}-rot.pt")
        self.n = max(self.n, i + 1)

    def load(self, i: int, wb: WordBatch, layers) -> Activations:
        acts = Activations(input_ids=wb.ids, attention_mask=wb.mask)
        for l in layers:
            acts.residuals[l] = torch.load(self.dir / f"{i}-{l}.pt")
        rot = self.dir / f"{i}-rot.pt"
        if rot.exists():
            acts.rotary = torch.load(rot)
        return acts

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def model_mask(mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """Additive [B, T, T] mask as the model applies it (padding keys; future keys for decoders)."""
    B, T = mask.shape
    allowed = mask.bool()[:, None, :].expand(B, T, T)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()[None]
    return torch.zeros(B, T, T).masked_fill(~allowed, float("-inf"))


def share(logits: torch.Tensor, amask: torch.Tensor) -> torch.Tensor:
    """Attention share within a subspace: softmax over every key the model lets the query see."""
    return torch.softmax(logits + amask, dim=-1).nan_to_num(0.0)


def offset_predictions(corpus: Corpus, offset: int, causal: bool) -> np.ndarray:
    """Local partner index u + offset for every word (-1 when outside the sentence, unaligned, or
    not visible to a decoder)."""
    out = np.full(corpus.n_words, -1, dtype=np.int64)
    for k, s in enumerate(corpus.sentences):
        off = corpus.word_offset[k]
        for u in range(s.n_words):
            v = u + offset
            if 0 <= v < s.n_words and s.members[u] and s.members[v] and (not causal or v < u):
                out[off + u] = v
    return out


# --------------------------------------------------------------------------------------------------
# Accuracy from predictions
# --------------------------------------------------------------------------------------------------


def directions(causal: bool) -> tuple[str, ...]:
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


def relation_matrix(corpus: Corpus) -> torch.Tensor:
    """[n_arcs, 2 * len(REL_ALL)] one-hot of (split, relation) membership, for counting by matmul."""
    n = len(corpus.arc_rel)
    out = torch.zeros(n, 2 * len(REL_ALL))
    for s in (SELECT, HELDOUT):
        for r, rel in enumerate(REL_ALL):
            out[torch.from_numpy(corpus.arc_mask(rel, s)), s * len(REL_ALL) + r] = 1.0
    return out


def accuracy_table(corpus: Corpus, preds: torch.Tensor, causal: bool, chunk: int = 512) -> torch.Tensor:
    """Accuracy [N, n_dirs, 2 splits, len(REL_ALL)] of N units given local predictions [N, n_words]."""
    onehot = relation_matrix(corpus)
    totals = onehot.sum(0).clamp(min=1.0).view(2, len(REL_ALL))
    dirs = directions(causal)
    out = torch.zeros(preds.shape[0], len(dirs), 2, len(REL_ALL))
    for d, direction in enumerate(dirs):
        q, t = arc_query_target(corpus, direction)
        q, t = torch.from_numpy(q), torch.from_numpy(t)
        for start in range(0, preds.shape[0], chunk):
            p = preds[start : start + chunk, q].long()
            hits = (p == t[None]).float() @ onehot  # [n, 2*R]
            out[start : start + chunk, d] = hits.view(-1, 2, len(REL_ALL)) / totals[None]
    return out
