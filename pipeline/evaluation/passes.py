"""The passes over the corpus: every broad unit (pass A), the greedy assembly of rank-1 components
within a layer (pass B) and the attention shares of the assembled units (pass C).

Pass A runs the model once per batch and keeps the residuals in a ``ResidualCache``; passes B and C
read them back instead of running the model again.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from pipeline.evaluation.batching import WordBatch, batches, masked_argmax, pool_mean, pool_to
from pipeline.evaluation.cache import ResidualCache
from pipeline.evaluation.corpus import REL_ALL, SELECT, Corpus, arc_query_target, directions
from pipeline.evaluation.scoring import select_best
from pipeline.evaluation.units import (
    HeadFactors,
    Unit,
    assembled_logits,
    component_logits,
    head_coordinates,
    model_mask,
    prefix_logits,
    share,
)
from pipeline.model.activations import Activations, capture
from pipeline.relations.typed import TypedRelation, score_words, word_features

POOL_SIZE = 32  # extra single components in the pool of a relation's assembled unit
MAX_STEPS = 32
MAX_ROWS = 1500


def log_progress(msg: str, quiet: bool) -> None:
    """One ``[eval]`` progress line on stderr unless ``quiet``."""
    if not quiet:
        print(f"[eval] {msg}", file=sys.stderr, flush=True)


@dataclass
class UnitSet:
    """Units of one method and their word-level predictions.

    Attributes:
        preds: [N, n_words] local index of each word's predicted partner, -1 none (int8).
        top: [N, n_words] word-level share of the prediction (share methods only; float16).
    """

    units: list[Unit]
    preds: torch.Tensor
    top: torch.Tensor | None = None

    def top_of(self, row: int) -> torch.Tensor:
        """The [n_words] shares of unit ``row``; ValueError for a method without shares."""
        if self.top is None:
            raise ValueError(f"{self.units[row].method} units have no attention shares")
        return self.top[row]


class Assembly(NamedTuple):
    """The assembled unit of one relation: its layer, direction and (head, component) pairs."""

    layer: int
    direction: str
    components: list[tuple[int, int]]


@dataclass
class _Plan:
    """A relation's assembly search: the first ``n_start`` pool entries are the starting set."""

    layer: int
    direction: str
    pool: list[tuple[int, int]]
    n_start: int


def _rank_ks(d_head: int) -> list[int]:
    return [k for k in (4, 8, 16, 32) if k < d_head]


def _new_preds(n_units: int, n_words: int) -> torch.Tensor:
    return torch.full((n_units, n_words), -1, dtype=torch.int8)


def gate_layers_for(n_layers: int) -> list[int]:
    """Layers whose residuals may feed a gate: all of a small model, 7 evenly spaced otherwise."""
    return list(range(n_layers)) if n_layers <= 8 else sorted({round(v) for v in np.linspace(0, n_layers - 1, 7)})


def _budget(ad) -> int:
    """Padded subword tokens per batch: smaller for models with many heads."""
    return 2048 if ad.n_layers * ad.n_heads <= 144 else 768


def _float_rotary(acts: Activations) -> tuple[torch.Tensor, torch.Tensor] | None:
    rot = acts.rotary
    return None if rot is None else (rot[0].float(), rot[1].float())


def _store(us: UnitSet, rows, wb: WordBatch, p: torch.Tensor, v: torch.Tensor | None) -> None:
    """Write [n, n_flat_words] predictions (and shares) of unit rows ``rows`` at the batch's words."""
    if isinstance(rows, list):
        r = torch.tensor(rows, dtype=torch.long)[:, None]
        g = wb.gidx[None, :]
    else:
        r, g = rows, wb.gidx
    us.preds[r, g] = p.to(torch.int8)
    if v is not None and us.top is not None:
        us.top[r, g] = v.nan_to_num(0.0, neginf=0.0).to(torch.float16)


# --------------------------------------------------------------------------------------------------
# Pass A: every broad unit, streamed over the corpus
# --------------------------------------------------------------------------------------------------


def pass_broad(
    ex, corpus: Corpus, causal: bool, components: bool, quiet: bool, cache: ResidualCache | None = None
) -> tuple[dict[str, UnitSet], dict[int, torch.Tensor]]:
    """One forward pass per batch: every attention head, head logit, rank-k truncation (and rank-1
    component), plus the word-pooled residuals of the gate layers (float16). Returns (units, features)."""
    ad = ex.adapter
    L, H, dh = ad.n_layers, ad.n_heads, ad.d_head
    n = corpus.n_words
    factors = {l: HeadFactors(ex, l) for l in range(L)}
    att_units = [Unit("attention", f"L{l}H{h}", l, h) for l in range(L) for h in range(H)]
    log_units = [Unit("logit", f"L{l}H{h}", l, h) for l in range(L) for h in range(H)]
    rank_units: list[Unit] = []
    rank_plan: dict[int, dict[int, list[tuple[int, int]]]] = {}  # layer -> {k: [(head, unit index)]}
    for l in range(L):
        for h in range(H):
            ks = sorted(set(_rank_ks(dh)) | {factors[l].energy_k[h]})
            for k in ks:
                if k > dh:
                    continue
                rank_plan.setdefault(l, {}).setdefault(k, []).append((h, len(rank_units)))
                rank_units.append(Unit("rank_k", f"L{l}H{h}k{k}", l, h, k=k))
    comp_units = (
        [Unit("component", f"L{l}H{h}c{r}", l, h, k=r) for l in range(L) for h in range(H) for r in range(dh)]
        if components
        else []
    )
    out = {
        "attention": UnitSet(
            att_units, _new_preds(len(att_units), n), torch.zeros(len(att_units), n, dtype=torch.float16)
        ),
        "logit": UnitSet(log_units, _new_preds(len(log_units), n)),
        "rank_k": UnitSet(
            rank_units, _new_preds(len(rank_units), n), torch.zeros(len(rank_units), n, dtype=torch.float16)
        ),
    }
    if components:
        out["component"] = UnitSet(comp_units, _new_preds(len(comp_units), n))
    feats = {l: torch.zeros(n, ad.d_model, dtype=torch.float16) for l in gate_layers_for(L)}
    t0 = time.time()
    n_sent, next_log = 0, 250
    for bi, wb in enumerate(batches(corpus, causal, budget=_budget(ad))):
        acts = capture(ad, wb.ids, wb.mask, layers=range(L), logits=True, attentions=True)
        if cache is not None:
            cache.save(bi, acts)
        amask = model_mask(wb.mask, causal)
        att = torch.stack([acts.attentions[l] for l in range(L)]).float()  # [L, B, H, T, T]
        B, T = wb.ids.shape
        att = att.permute(0, 2, 1, 3, 4).reshape(L * H, B, T, T)
        p, v = masked_argmax(pool_to(att, wb), wb)
        _store(out["attention"], slice(None), wb, p, v)
        lg = torch.stack([acts.logits[l] for l in range(L)]).float().permute(0, 2, 1, 3, 4).reshape(L * H, B, T, T)
        p, _ = masked_argmax(pool_mean(lg, wb), wb)
        _store(out["logit"], slice(None), wb, p, None)
        del att, lg
        rot = _float_rotary(acts)
        for l in range(L):
            x = acts.residuals[l].float()
            if l in feats:
                feats[l][wb.gidx] = word_features(wb, x).to(torch.float16)
            hf = factors[l]
            coords = head_coordinates(hf, x)
            for k, members in rank_plan.get(l, {}).items():
                heads = [h for h, _ in members]
                sh = share(prefix_logits(hf, x, rot, k, coords)[heads], amask)
                p, v = masked_argmax(pool_to(sh, wb), wb)
                _store(out["rank_k"], [i for _, i in members], wb, p, v)
            if components:
                for h in range(H):
                    cl = component_logits(hf, x, rot, h)
                    p, _ = masked_argmax(pool_mean(cl, wb), wb)
                    base = (l * H + h) * dh
                    _store(out["component"], slice(base, base + dh), wb, p, None)
        n_sent += len(wb.sent)
        if n_sent >= next_log or n_sent == len(corpus.sentences):
            next_log += 250
            log_progress(f"broad pass: {n_sent}/{len(corpus.sentences)} sentences, {time.time() - t0:.0f} s", quiet)
    return out, feats


# --------------------------------------------------------------------------------------------------
# Pass B: greedy assembly of components within a layer
# --------------------------------------------------------------------------------------------------


def _component_of(u: Unit) -> tuple[int, int]:
    """(head, component) of a ``component`` unit."""
    if u.head is None or u.k is None:
        raise ValueError(f"{u.id} is not a component unit")
    return u.head, u.k


def _assembly_plans(
    ex, causal: bool, comp: UnitSet | None, comp_acc: torch.Tensor | None, logit: UnitSet, logit_acc: torch.Tensor
) -> dict[str, _Plan]:
    """Per relation: the starting head (best full logit), its layer and direction, and the pool."""
    H, dh = ex.adapter.n_heads, ex.adapter.d_head
    dirs = directions(causal)
    plans = {}
    for r, rel in enumerate(REL_ALL):
        ui, di = select_best(logit_acc, dirs, r)
        layer, h0 = logit.units[ui].at_layer, logit.units[ui].head
        heads = [
            h
            for h in torch.argsort(
                logit_acc[layer * H : (layer + 1) * H, di, SELECT, r], descending=True, stable=True
            ).tolist()
            if h != h0
        ][:2]
        assert h0 is not None  # a logit unit always has a head
        pool = [(h0, c) for c in range(dh)] + [(h, c) for h in heads for c in range(dh)]
        if comp is not None and comp_acc is not None:
            in_layer = torch.arange(layer * H * dh, (layer + 1) * H * dh)
            order = torch.argsort(comp_acc[in_layer, di, SELECT, r], descending=True, stable=True).tolist()
            extra = [_component_of(comp.units[int(in_layer[j])]) for j in order]
            pool += [c for c in extra if c not in pool][:POOL_SIZE]
        plans[rel] = _Plan(layer, dirs[di], pool, dh)  # the first dh pool entries are the start
    return plans


def _hits(data, curs, ninf, n_pool: int, delta_sign: float) -> torch.Tensor:
    """Arcs hit after adding (+1) or removing (-1) each pool component, [n_pool]."""
    tot = torch.zeros(n_pool)
    for (R, T), cur, bad in zip(data, curs, ninf):
        trial = (cur[:, None, :] + delta_sign * R).masked_fill(bad[:, None, :], float("-inf"))
        tot += (trial.argmax(-1) == T[:, None]).float().sum(0)
    return tot


def _greedy(chunks: list[tuple[torch.Tensor, torch.Tensor]], n_pool: int, n_start: int) -> tuple[torch.Tensor, float]:
    """Greedy add/remove steps over a relation's selection rows; returns (chosen [n_pool] bool, hits).

    ``chunks``: (rows [n, n_pool, U] pooled component logits of each arc's query word, -inf where
    not a candidate; targets [n]) per batch.
    """
    data = [(R.float(), T) for R, T in chunks]
    ninf = [~torch.isfinite(R[:, 0, :]) for R, _ in data]
    data = [(R.nan_to_num(0.0, posinf=0.0, neginf=0.0), T) for R, T in data]
    chosen = torch.zeros(n_pool, dtype=torch.bool)
    chosen[:n_start] = True
    curs = [R[:, chosen, :].sum(1) for R, _ in data]
    base = sum(
        float((cur.masked_fill(bad, float("-inf")).argmax(-1) == T).float().sum())
        for (R, T), cur, bad in zip(data, curs, ninf)
    )
    for _ in range(MAX_STEPS):
        add = _hits(data, curs, ninf, n_pool, 1.0).masked_fill(chosen, -1.0)
        rem = _hits(data, curs, ninf, n_pool, -1.0).masked_fill(~chosen, -1.0)
        if chosen.sum() <= 1:
            rem[:] = -1.0
        ja, jr = int(add.argmax()), int(rem.argmax())
        best, j, sign = (float(add[ja]), ja, 1.0) if add[ja] >= rem[jr] else (float(rem[jr]), jr, -1.0)
        if best < base + 1.0:
            break
        base = best
        chosen[j] = sign > 0
        curs = [cur + sign * R[:, j, :] for (R, _), cur in zip(data, curs)]
    return chosen, base


def pass_assemble(
    ex,
    corpus: Corpus,
    causal: bool,
    comp: UnitSet | None,
    comp_acc: torch.Tensor | None,
    logit: UnitSet,
    logit_acc: torch.Tensor,
    quiet: bool,
    seed: int = 0,
    cache: ResidualCache | None = None,
) -> dict[str, Assembly]:
    """Assemble one unit per relation from rank-1 components of the heads of one layer.

    Start: all components of the relation's best head by full-logit accuracy on the selection part
    (its layer and direction fix the unit's). Pool: those components, all components of the two next
    best heads of that layer, and (with the component sweep) the layer's POOL_SIZE best single
    components. Then greedy steps on the selection part: add a pool component or remove a chosen
    one, whichever raises accuracy most (summed word-pooled component logits, argmax), until no step
    gains an arc (at most MAX_STEPS steps; at most MAX_ROWS arcs per relation are used). Returns
    relation -> Assembly(layer, direction, [(head, component)])."""
    ad = ex.adapter
    dh = ad.d_head
    rng = np.random.default_rng(seed)
    plans = _assembly_plans(ex, causal, comp, comp_acc, logit, logit_acc)
    local = corpus.word_local
    chunks: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {rel: [] for rel in REL_ALL}
    arcs_used = {}
    for rel, plan in plans.items():
        q, t = arc_query_target(corpus, plan.direction)
        idx = np.nonzero(corpus.arc_mask(rel, SELECT))[0]
        if len(idx) > MAX_ROWS:
            idx = np.sort(rng.choice(idx, MAX_ROWS, replace=False))
        arcs_used[rel] = (q[idx], t[idx], corpus.word_sent[q[idx]])
    layers = sorted({p.layer for p in plans.values()})
    factors = {l: HeadFactors(ex, l) for l in layers}
    selection_sents = {int(s) for _, _, sents in arcs_used.values() for s in sents}
    t0 = time.time()
    for bi, wb in enumerate(batches(corpus, causal, budget=_budget(ad))):
        if not selection_sents.intersection(wb.sent):
            continue
        acts = cache.load(bi, wb, layers) if cache is not None else capture(ad, wb.ids, wb.mask, layers=layers)
        rot = _float_rotary(acts)
        sent_pos = {k: b for b, k in enumerate(wb.sent)}
        pooled: dict[tuple[int, int, int], torch.Tensor] = {}
        for rel, plan in plans.items():
            qa, ta, sents = arcs_used[rel]
            keep = np.array([s in sent_pos for s in sents], dtype=bool)
            if not keep.any():
                continue
            layer, pool = plan.layer, plan.pool
            x = acts.residuals[layer].float()
            hf = factors[layer]
            for h in sorted({h for h, _ in pool}):
                if (layer, h, 0) not in pooled:
                    cl = pool_mean(component_logits(hf, x, rot, h), wb)  # [dh, B, U, U]
                    for c in range(dh):
                        pooled[(layer, h, c)] = cl[c]
            mats = torch.stack([pooled[(layer, h, c)] for h, c in pool]).masked_fill(~wb.cand, float("-inf"))
            b = torch.tensor([sent_pos[s] for s in sents[keep]])
            u = torch.from_numpy(local[qa[keep]])
            rows = mats[:, b, u, :].permute(1, 0, 2).contiguous()  # [n, P, U]
            chunks[rel].append((rows.to(torch.float16), torch.from_numpy(ta[keep])))
    out = {}
    for rel, plan in plans.items():
        if not chunks[rel]:
            out[rel] = Assembly(plan.layer, plan.direction, plan.pool[: plan.n_start])
            continue
        n = sum(len(T) for _, T in chunks[rel])
        chosen, hits = _greedy(chunks[rel], len(plan.pool), plan.n_start)
        comps = sorted(plan.pool[j] for j in torch.nonzero(chosen).flatten().tolist())
        out[rel] = Assembly(plan.layer, plan.direction, comps)
        log_progress(
            f"assembled {rel}: L{plan.layer} {plan.direction}, {int(chosen.sum())} components, selection {hits / max(n, 1):.3f} on {n} arcs",
            quiet,
        )
    log_progress(f"assembly pass: {time.time() - t0:.0f} s", quiet)
    return out


# --------------------------------------------------------------------------------------------------
# Pass C: assembled shares
# --------------------------------------------------------------------------------------------------


def pass_specific(
    ex, corpus: Corpus, causal: bool, assembled: list[Unit], quiet: bool, cache: ResidualCache | None = None
) -> UnitSet:
    """Word-level attention share (argmax and its value) of each assembled unit, on every word."""
    ad = ex.adapter
    n = corpus.n_words
    us = UnitSet(assembled, _new_preds(len(assembled), n), torch.zeros(len(assembled), n, dtype=torch.float16))
    if not assembled:
        return us
    layers = sorted({u.at_layer for u in assembled})
    factors = {l: HeadFactors(ex, l) for l in layers}
    t0 = time.time()
    for bi, wb in enumerate(batches(corpus, causal, budget=_budget(ad))):
        acts = cache.load(bi, wb, layers) if cache is not None else capture(ad, wb.ids, wb.mask, layers=layers)
        amask = model_mask(wb.mask, causal)
        rot = _float_rotary(acts)
        logits = torch.stack(
            [
                assembled_logits(factors[u.at_layer], acts.residuals[u.at_layer].float(), rot, u.components)
                for u in assembled
            ]
        )
        p, v = masked_argmax(pool_to(share(logits, amask), wb), wb)
        _store(us, slice(None), wb, p, v)
    log_progress(f"assembled-share pass: {time.time() - t0:.0f} s", quiet)
    return us


# --------------------------------------------------------------------------------------------------
# Word features of more layers, and the library pass of the typed relations
# --------------------------------------------------------------------------------------------------


def pass_word_features(
    ex, corpus: Corpus, causal: bool, layers: list[int], quiet: bool, cache: ResidualCache | None = None
) -> dict[int, torch.Tensor]:
    """Word-pooled residuals [n_words, d_model] (float16, as pass A keeps them) of ``layers``."""
    ad = ex.adapter
    feats = {l: torch.zeros(corpus.n_words, ad.d_model, dtype=torch.float16) for l in layers}
    if not layers:
        return feats
    t0 = time.time()
    for bi, wb in enumerate(batches(corpus, causal, budget=_budget(ad))):
        acts = cache.load(bi, wb, layers) if cache is not None else capture(ad, wb.ids, wb.mask, layers=layers)
        for l in layers:
            feats[l][wb.gidx] = word_features(wb, acts.residuals[l].float()).to(torch.float16)
    log_progress(f"word features of layers {layers}: {time.time() - t0:.0f} s", quiet)
    return feats


def pass_typed(
    ex,
    corpus: Corpus,
    causal: bool,
    typed: dict[str, dict[str, TypedRelation]],
    quiet: bool,
    cache: ResidualCache | None = None,
) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """The library's ``score_words`` over every batch of the corpus, for groups of typed relations
    (``typed``: group -> relation -> TypedRelation; one group per gate kind). Returns group ->
    relation -> (partner, share, gate, probability), each [n_words] (partner -1: none)."""
    ad = ex.adapter
    n = corpus.n_words
    every = [t for group in typed.values() for t in group.values()]
    unit_layers = sorted({t.layer for t in every})
    layers = sorted(set(unit_layers) | {t.gate_layer for t in every if t.gate is not None})
    factors = {l: HeadFactors(ex, l) for l in unit_layers}
    out = {
        g: {
            rel: (torch.full((n,), -1, dtype=torch.long), torch.zeros(n), torch.zeros(n), torch.zeros(n))
            for rel in group
        }
        for g, group in typed.items()
    }
    t0 = time.time()
    for bi, wb in enumerate(batches(corpus, causal, budget=_budget(ad))):
        acts = cache.load(bi, wb, layers) if cache is not None else capture(ad, wb.ids, wb.mask, layers=layers)
        amask = model_mask(wb.mask, causal)
        rot = _float_rotary(acts)
        attachments: dict = {}  # one attachment per unit, shared by the groups
        for g, group in typed.items():
            scores = score_words(list(group.values()), factors, acts.residuals, rot, amask, wb, attachments)
            for rel, s in scores.items():
                for arr, v in zip(out[g][rel], (s.partner, s.share, s.gate, s.probability)):
                    arr[wb.gidx] = v.to(arr.dtype)
    log_progress(f"typed-relation pass (library score_words): {time.time() - t0:.0f} s", quiet)
    return out
