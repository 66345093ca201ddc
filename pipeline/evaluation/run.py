"""How well do a model's QK circuits recover gold dependency relations? (Clark et al. 2019's protocol)

``run_evaluation(conllu_path, model)`` scores several kinds of *units* (see pipeline.eval_units) on UD
gold trees, each unit chosen per relation on one part of the data and scored on the other:

    offset     a fixed relative position (-3..+3)
    attention  a raw attention head (the model's own probabilities, pooled to words)
    logit      a head's full logits, pooled to words by the mean (argmax of the logit)
    component  one rank-1 component of a head's QK circuit (pooled logit)
    rank_k     a head's top-k truncation, k in {4, 8, 16, (32,) energy-rule k}; attention share
    assembled  rank-1 components of several heads of one layer, summed (greedy forward selection
               on the selection part); attention share
    qk         the graph's relation type: the best subspace attachment (attention/rank_k/assembled,
               chosen on the selection part) plus a logistic gate on the residuals of the query word
               and of the word it attaches to; a held-out arc counts only when the gate fires
               (p >= 0.5) AND the argmax is the gold partner
    qk_query   the same with a gate on the query word's residual alone

The pair score of a ``qk`` unit, gate(query) x share, is mapped to an estimated precision by an
isotonic fit on the selection part (pipeline.calibration), so threshold 0.7 means ~70% of returned
pairs are gold arcs of the unit's relation. Held-out precision/recall is reported over a sweep.

Command line (``--json``: the LAST line printed is one JSON object):

    python -m pipeline.evaluation CONLLU [--model M] [--json] [--plots DIR] [--select-on FILE]
                                  [--max-sentences N] [--write-labels] [--seed S]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.evaluation.calibration import (  # calibrate_score, load_gate, load_relation_labels: re-exported for the graph
    LABELS_SCHEMA,
    calibrate_score,  # noqa: F401
    compress_knots,
    fit_gate,
    isotonic_fit,
    isotonic_predict,
    labels_path,
    load_gate,  # noqa: F401
    load_relation_labels,  # noqa: F401
)
from pipeline.evaluation.units import (
    ALL,
    HELDOUT,
    OFFSETS,
    REL_ALL,
    RELATIONS,
    SELECT,
    Corpus,
    HeadFactors,
    ResidualCache,
    Unit,
    WordBatch,
    accuracy_table,
    arc_query_target,
    assembled_id,
    assembled_logits,
    batches,
    build_corpus,
    component_logits,
    directions,
    head_coordinates,
    masked_argmax,
    model_mask,
    offset_predictions,
    pool_mean,
    pool_to,
    prefix_logits,
    share,
)
from pipeline.model.activations import capture

METHODS = ("offset", "attention", "logit", "component", "rank_k", "assembled", "qk", "qk_query")
BAR_RELATIONS = ("nsubj", "obj", "amod", "det", "case", "compound", "aux", "nmod:poss")
HEATMAP_RELATIONS = ("nsubj", "obj", "amod", "det", "case", "compound", "aux", "nmod:poss", "advmod", ALL)
DEFAULT_THRESHOLD = 0.7
LABELLED_BAR = (0.7, 0.2)  # precision >= 0.7 with recall >= 0.2 at the default threshold
UNLABELLED_BAR = 0.85
ACCURACY_FLOOR = 0.5
"""A subspace of the label artifact gets a label only if its held-out accuracy on its best relation
(Clark's protocol, best direction chosen on the selection part) is at least this."""
GATE_ON = 0.5
POOL_SIZE = 32  # extra single components in the pool of a relation's assembled unit
MAX_STEPS = 32
COMPONENT_LIMIT = 4096  # rank-1 components swept by default (all-MiniLM: 2,304; SmolLM2: 17,280)
MAX_ROWS = 1500
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))

# Clark et al. 2019 (BERT-base, best single head, Stanford dependencies on WSJ), mapped to UD names.
CLARK = {
    "det": 94.3,
    "obj": 86.8,
    "nsubj": 58.5,
    "amod": 75.6,
    "aux": 81.1,
    "nmod:poss": 80.5,
    "aux:pass": 94.1,
    "compound:prt": 99.1,
    "advmod": 48.8,
    "mark": 50.7,
    "ccomp": 48.8,
    "compound": 70.4,
    "case": 76.3,
    ALL: 34.7,
}
CLARK_NAMES = {
    "obj": "dobj",
    "nmod:poss": "poss",
    "aux:pass": "auxpass",
    "compound:prt": "prt",
    "compound": "nn",
    "case": "pobj (reversed)",
}


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[eval] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    model: str
    source: str
    split: str
    causal: bool
    counts: dict
    accuracy: dict  # relation -> method -> held-out accuracy
    selected: dict  # relation -> method -> {unit, direction, select, heldout}
    calibration: dict
    sweep: dict
    labels: dict
    diagnostics: dict
    runtime_s: float
    plots: list = field(default_factory=list)

    @property
    def macro(self) -> dict[str, float]:
        out = {}
        for m in METHODS:
            vals = [self.accuracy[r].get(m) for r in RELATIONS]
            vals = [v for v in vals if v is not None]
            out[m] = round(float(np.mean(vals)), 4) if vals else None
        return out

    def bars(self) -> dict:
        lab = self.calibration["labelled"]
        per = {
            r: bool(lab[r][0] is not None and lab[r][0] >= LABELLED_BAR[0] and lab[r][1] >= LABELLED_BAR[1])
            for r in BAR_RELATIONS
        }
        up = self.calibration["unlabelled"][0]
        return {
            "labelled": per,
            "unlabelled": bool(up is not None and up >= UNLABELLED_BAR),
            "all_met": all(per.values()) and bool(up is not None and up >= UNLABELLED_BAR),
        }

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "source": self.source,
            "split": self.split,
            "causal": self.causal,
            "macro": self.macro,
            "accuracy": self.accuracy,
            "calibration": self.calibration,
            "bars": self.bars(),
            "selected": self.selected,
            "clark": {r: CLARK.get(r) for r in REL_ALL},
            "counts": self.counts,
            "sweep": self.sweep,
            "diagnostics": self.diagnostics,
            "labels": {
                "path": self.labels.get("path"),
                "n_labelled": self.labels.get("n_labelled"),
                "floor": ACCURACY_FLOOR,
            },
            "runtime_s": round(self.runtime_s, 1),
            "plots": self.plots,
        }

    def to_markdown(self) -> str:
        pct = lambda v: "—" if v is None else f"{100 * v:.1f}"  # noqa: E731
        lines = [f"### {self.model}: held-out accuracy (%), Clark et al.'s protocol", ""]
        lines.append(
            f"Data: {self.source}. Split: {self.split}. "
            + (
                "Causal model: every arc is judged from its later word (visible direction)."
                if self.causal
                else "Direction (dependent->head or head->dependent) chosen per unit and relation on the selection part."
            )
        )
        lines.append("")
        head = "| relation | n (held-out) | Clark BERT-base | " + " | ".join(METHODS) + " |"
        lines += [head, "|" + "---|" * (3 + len(METHODS))]
        for r in REL_ALL:
            clark = CLARK.get(r)
            cl = "—" if clark is None else f"{clark:.1f}" + (f" ({CLARK_NAMES[r]})" if r in CLARK_NAMES else "")
            cells = [pct(self.accuracy[r].get(m)) for m in METHODS]
            best = max((v for v in (self.accuracy[r].get(m) for m in METHODS) if v is not None), default=None)
            cells = [
                f"**{c}**" if best is not None and self.accuracy[r].get(m) == best else c
                for c, m in zip(cells, METHODS)
            ]
            lines.append(f"| {r} | {self.counts[r]['heldout']} | {cl} | " + " | ".join(cells) + " |")
        mac = self.macro
        lines.append("| **macro** (23 relations) | | | " + " | ".join(pct(mac[m]) for m in METHODS) + " |")
        lines += ["", f"### {self.model}: chosen unit per relation and method (direction; selection-part accuracy)", ""]
        lines += ["| relation | " + " | ".join(METHODS) + " |", "|" + "---|" * (1 + len(METHODS))]
        for r in REL_ALL:
            cells = []
            for m in METHODS:
                s = self.selected[r].get(m)
                cells.append("—" if not s else f"`{s['unit']}` {_short_dir(s['direction'])} {100 * s['select']:.0f}")
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"### {self.model}: calibrated `qk` relation types at threshold {DEFAULT_THRESHOLD} (held-out)",
            "",
        ]
        lines += [
            "| relation | attachment (gate layer) | precision | recall | returned pairs | bar (P>=0.7, R>=0.2) | query-only gate P / R |",
            "|---|---|---|---|---|---|---|",
        ]
        bars = self.bars()
        qq = self.calibration.get("labelled_query_gate", {})
        for r in RELATIONS:
            p, rc = self.calibration["labelled"][r]
            n = self.calibration["returned"][r]
            e = self.selected[r].get("qk", {})
            unit = f"`{e.get('attachment', '—')}` ({e.get('gate_layer', '—')})"
            bar = ("met" if bars["labelled"][r] else "**not met**") if r in BAR_RELATIONS else ""
            q = qq.get(r, [None, None])
            lines.append(f"| {r} | {unit} | {pct(p)} | {pct(rc)} | {n} | {bar} | {pct(q[0])} / {pct(q[1])} |")
        up, ur = self.calibration["unlabelled"]
        lines.append(
            f"| **unlabelled** (union of the qk types) | | {pct(up)} | {pct(ur)} | {self.calibration['returned']['unlabelled']} | {'met' if bars['unlabelled'] else '**not met**'} (P>=0.85) | |"
        )
        d = self.diagnostics
        if "raw_unlabelled" in d:
            ru = d["raw_unlabelled"]
            bh = d.get("best_head_unlabelled", {})
            lines += [
                "",
                f"Uncalibrated, best raw head for `all` (`{bh.get('unit')}`): attention >= 0.7 lands on a gold arc {pct(bh.get('precision'))}% of the time ({bh.get('returned')} pairs).",
            ]
            lines += [
                "",
                f"Uncalibrated: pairs with share >= 0.7 in the {ru['n_subspaces']} label-artifact subspaces (top-3 per layer by logit spread) land on a gold arc (any label, either direction) {pct(ru['precision'])}% of the time ({ru['returned']} pairs; labelled precision of their best label {pct(ru['labelled_precision'])}%).",
            ]
        lines += ["", f"### {self.model}: threshold sweep (held-out precision / recall, %)", ""]
        ts = [
            t
            for t in self.sweep["thresholds"]
            if (abs(t * 20 - round(t * 20)) < 1e-9 and round(t * 20) % 2 == 0) or t in (0.7,)
        ]
        ts = sorted(set(ts))
        lines += ["| relation | " + " | ".join(f"t={t:.1f}" for t in ts) + " |", "|" + "---|" * (1 + len(ts))]
        idx = {t: self.sweep["thresholds"].index(t) for t in ts}
        for r in list(BAR_RELATIONS) + ["unlabelled"]:
            row = self.sweep["labelled"][r] if r != "unlabelled" else self.sweep["unlabelled"]
            cells = [f"{pct(row['precision'][idx[t]])}/{pct(row['recall'][idx[t]])}" for t in ts]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Labels: {self.labels.get('n_labelled')} of {self.labels.get('n_entries')} subspaces labelled (held-out accuracy floor {ACCURACY_FLOOR}). Runtime {self.runtime_s:.0f} s.",
        ]
        return "\n".join(lines)


def _artifact_json(obj) -> str:
    """Indented JSON with every list of numbers kept on one line (readable diffs, small files)."""
    import re

    text = json.dumps(obj, indent=1, ensure_ascii=False)
    return (
        re.sub(
            r"\[\s*([-0-9.eE, \n]+?)\s*\]",
            lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
            text,
        )
        + "\n"
    )


def _short_dir(d: str) -> str:
    return {"dep2head": "d→h", "head2dep": "h→d", "visible": "vis"}.get(d, d)


# --------------------------------------------------------------------------------------------------
# Pass A: every broad unit, streamed over the corpus
# --------------------------------------------------------------------------------------------------


@dataclass
class UnitSet:
    units: list[Unit]
    preds: torch.Tensor  # [N, n_words] local index, -1 none
    top: torch.Tensor | None = None  # [N, n_words] word-level share of the prediction (share methods)


def _rank_ks(d_head: int) -> list[int]:
    return [k for k in (4, 8, 16, 32) if k < d_head]


def _new_preds(n_units: int, n_words: int) -> torch.Tensor:
    return torch.full((n_units, n_words), -1, dtype=torch.int8)


def gate_layers_for(n_layers: int) -> list[int]:
    """Layers whose residuals may feed a gate: all of a small model, 7 evenly spaced otherwise."""
    return list(range(n_layers)) if n_layers <= 8 else sorted({round(v) for v in np.linspace(0, n_layers - 1, 7)})


def pass_broad(
    ex, corpus: Corpus, causal: bool, components: bool, quiet: bool, cache: ResidualCache | None = None
) -> tuple[dict[str, UnitSet], dict[int, torch.Tensor]]:
    """One forward pass per batch: every attention head, head logit, rank-k truncation (and rank-1
    component), plus the word-pooled residuals of the gate layers. Returns (units, features)."""
    ad = ex.adapter
    L, H, dh = ad.n_layers, ad.n_heads, ad.d_head
    n = corpus.n_words
    factors = {l: HeadFactors(ex, l) for l in range(L)}
    att_units = [Unit("attention", f"L{l}H{h}", l, h) for l in range(L) for h in range(H)]
    log_units = [Unit("logit", f"L{l}H{h}", l, h) for l in range(L) for h in range(H)]
    rank_units, rank_plan = [], {}  # layer -> {k: [(head, unit index)]}
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
        rot = acts.rotary
        if rot is not None:
            rot = (rot[0].float(), rot[1].float())
        for l in range(L):
            x = acts.residuals[l].float()
            if l in feats:
                f = torch.einsum("but,btd->bud", wb.m_avg, x)
                feats[l][wb.gidx] = f[wb.bidx, wb.uidx].to(torch.float16)
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
            _log(f"broad pass: {n_sent}/{len(corpus.sentences)} sentences, {time.time() - t0:.0f} s", quiet)
    return out, feats


def _budget(ad) -> int:
    """Padded subword tokens per batch: smaller for models with many heads."""
    return 2048 if ad.n_layers * ad.n_heads <= 144 else 768


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
# Selection
# --------------------------------------------------------------------------------------------------


def select_best(acc: torch.Tensor, units: list[Unit], dirs: tuple[str, ...], rel: int) -> tuple[int, int]:
    """(unit index, direction index) with the best selection-part accuracy on relation ``rel``;
    ties go to the earlier unit and direction."""
    sel = acc[:, :, SELECT, rel]  # [N, D]
    flat = int(torch.argmax(sel.reshape(-1)))
    return flat // len(dirs), flat % len(dirs)


def _entry(unit: Unit, acc: torch.Tensor, ui: int, di: int, dirs, rel: int) -> dict:
    return {
        "unit": unit.id,
        "direction": dirs[di],
        "select": round(float(acc[ui, di, SELECT, rel]), 4),
        "heldout": round(float(acc[ui, di, HELDOUT, rel]), 4),
    }


# --------------------------------------------------------------------------------------------------
# Pass B: greedy assembly of components within a layer
# --------------------------------------------------------------------------------------------------


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
) -> dict[str, tuple[int, str, list[tuple[int, int]]]]:
    """Assemble one unit per relation from rank-1 components of the heads of one layer.

    Start: all components of the relation's best head by full-logit accuracy on the selection part
    (its layer and direction fix the unit's). Pool: those components, all components of the two next
    best heads of that layer, and (with the component sweep) the layer's POOL_SIZE best single
    components. Then greedy steps on
    the selection part: add a pool component or remove a chosen one, whichever raises accuracy most
    (summed word-pooled component logits, argmax), until no step gains an arc (at most
    MAX_STEPS steps; at most MAX_ROWS arcs per relation are used). Returns relation -> (layer,
    direction, [(head, component)])."""
    ad = ex.adapter
    H, dh = ad.n_heads, ad.d_head
    dirs = directions(causal)
    rng = np.random.default_rng(seed)
    plans = {}
    for r, rel in enumerate(REL_ALL):
        ui, di = select_best(logit_acc, logit.units, dirs, r)
        layer, h0 = logit.units[ui].layer, logit.units[ui].head
        heads = [
            h
            for h in torch.argsort(
                logit_acc[layer * H : (layer + 1) * H, di, SELECT, r], descending=True, stable=True
            ).tolist()
            if h != h0
        ][:2]
        pool = [(h0, c) for c in range(dh)] + [(h, c) for h in heads for c in range(dh)]
        if comp is not None:
            in_layer = torch.arange(layer * H * dh, (layer + 1) * H * dh)
            order = torch.argsort(comp_acc[in_layer, di, SELECT, r], descending=True, stable=True).tolist()
            extra = [(comp.units[int(in_layer[j])].head, comp.units[int(in_layer[j])].k) for j in order]
            pool += [c for c in extra if c not in pool][:POOL_SIZE]
        plans[rel] = (layer, dirs[di], pool, dh)  # the first dh pool entries are the start
    local = corpus.word_local
    chunks: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {rel: [] for rel in REL_ALL}
    arcs_used = {}
    for rel, (layer, direction, pool, _) in plans.items():
        q, t = arc_query_target(corpus, direction)
        idx = np.nonzero(corpus.arc_mask(rel, SELECT))[0]
        if len(idx) > MAX_ROWS:
            idx = np.sort(rng.choice(idx, MAX_ROWS, replace=False))
        arcs_used[rel] = (q[idx], t[idx], corpus.word_sent[q[idx]])
    layers = sorted({p[0] for p in plans.values()})
    factors = {l: HeadFactors(ex, l) for l in layers}
    selection_sents = {int(s) for qa, _, sents in arcs_used.values() for s in sents}
    t0 = time.time()
    for bi, wb in enumerate(batches(corpus, causal, budget=_budget(ad))):
        if not selection_sents.intersection(wb.sent):
            continue
        acts = cache.load(bi, wb, layers) if cache is not None else capture(ad, wb.ids, wb.mask, layers=layers)
        rot = acts.rotary
        if rot is not None:
            rot = (rot[0].float(), rot[1].float())
        sent_pos = {k: b for b, k in enumerate(wb.sent)}
        pooled: dict[tuple[int, int, int], torch.Tensor] = {}
        for rel, (layer, direction, pool, _) in plans.items():
            qa, ta, sents = arcs_used[rel]
            keep = np.array([s in sent_pos for s in sents], dtype=bool)
            if not keep.any():
                continue
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
    for rel, (layer, direction, pool, n_start) in plans.items():
        if not chunks[rel]:
            out[rel] = (layer, direction, pool[:n_start])
            continue
        data = [(R.float(), T) for R, T in chunks[rel]]
        ninf = [~torch.isfinite(R[:, 0, :]) for R, _ in data]
        data = [(R.nan_to_num(0.0, posinf=0.0, neginf=0.0), T) for R, T in data]
        n = sum(len(T) for _, T in data)
        chosen = torch.zeros(len(pool), dtype=torch.bool)
        chosen[:n_start] = True
        curs = [R[:, chosen, :].sum(1) for R, _ in data]

        def hits(delta_sign: float) -> torch.Tensor:
            tot = torch.zeros(len(pool))
            for (R, T), cur, bad in zip(data, curs, ninf):
                trial = (cur[:, None, :] + delta_sign * R).masked_fill(bad[:, None, :], float("-inf"))
                tot += (trial.argmax(-1) == T[:, None]).float().sum(0)
            return tot

        base = sum(
            float((cur.masked_fill(bad, float("-inf")).argmax(-1) == T).float().sum())
            for (R, T), cur, bad in zip(data, curs, ninf)
        )
        for _ in range(MAX_STEPS):
            add = hits(1.0).masked_fill(chosen, -1.0)
            rem = hits(-1.0).masked_fill(~chosen, -1.0)
            if chosen.sum() <= 1:
                rem[:] = -1.0
            ja, jr = int(add.argmax()), int(rem.argmax())
            best, j, sign = (float(add[ja]), ja, 1.0) if add[ja] >= rem[jr] else (float(rem[jr]), jr, -1.0)
            if best < base + 1.0:
                break
            base = best
            chosen[j] = sign > 0
            curs = [cur + sign * R[:, j, :] for (R, _), cur in zip(data, curs)]
        out[rel] = (layer, direction, sorted(pool[j] for j in torch.nonzero(chosen).flatten().tolist()))
        _log(
            f"assembled {rel}: L{layer} {direction}, {int(chosen.sum())} components, selection {base / max(n, 1):.3f} on {n} arcs",
            quiet,
        )
    _log(f"assembly pass: {time.time() - t0:.0f} s", quiet)
    return out


# --------------------------------------------------------------------------------------------------
# Pass C: assembled shares and gate features
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
    layers = sorted({u.layer for u in assembled})
    factors = {l: HeadFactors(ex, l) for l in layers}
    t0 = time.time()
    for bi, wb in enumerate(batches(corpus, causal, budget=_budget(ad))):
        acts = cache.load(bi, wb, layers) if cache is not None else capture(ad, wb.ids, wb.mask, layers=layers)
        amask = model_mask(wb.mask, causal)
        rot = acts.rotary
        if rot is not None:
            rot = (rot[0].float(), rot[1].float())
        logits = torch.stack(
            [assembled_logits(factors[u.layer], acts.residuals[u.layer].float(), rot, u.components) for u in assembled]
        )
        p, v = masked_argmax(pool_to(share(logits, amask), wb), wb)
        _store(us, slice(None), wb, p, v)
    _log(f"assembled-share pass: {time.time() - t0:.0f} s", quiet)
    return us


# --------------------------------------------------------------------------------------------------
# Pairs, gates and calibration
# --------------------------------------------------------------------------------------------------


def _gold_sets(corpus: Corpus):
    """Directed labelled arcs {(rel_idx, dep, head)} and undirected unlabelled {(min, max)} (global)."""
    lab = set(zip(corpus.arc_rel.tolist(), corpus.arc_dep.tolist(), corpus.arc_head.tolist()))
    unl = set(
        zip(np.minimum(corpus.arc_dep, corpus.arc_head).tolist(), np.maximum(corpus.arc_dep, corpus.arc_head).tolist())
    )
    return lab, unl


def pair_correct(corpus: Corpus, preds: np.ndarray, rel: str, direction: str, gold_lab: set) -> np.ndarray:
    """For each word i: is (i, pred[i]) a gold arc of ``rel`` in ``direction``? [n_words] bool."""
    ri = RELATIONS.index(rel)
    g = corpus.word_offset[corpus.word_sent] + preds  # global partner
    out = np.zeros(corpus.n_words, dtype=bool)
    for i in np.nonzero(preds >= 0)[0]:
        j = int(g[i])
        if direction == "dep2head":
            out[i] = (ri, int(i), j) in gold_lab
        elif direction == "head2dep":
            out[i] = (ri, j, int(i)) in gold_lab
        else:
            out[i] = (ri, int(i), j) in gold_lab or (ri, j, int(i)) in gold_lab
    return out


def query_target(corpus: Corpus, rel: str, direction: str) -> np.ndarray:
    """[n_words] bool: the word is the querying end of a gold ``rel`` arc in ``direction``."""
    m = corpus.arc_mask(rel, None)
    q, _ = arc_query_target(corpus, direction)
    y = np.zeros(corpus.n_words, dtype=bool)
    y[q[m]] = True
    return y


def pr_at(
    scores: np.ndarray, correct: np.ndarray, mask: np.ndarray, n_gold: int, t: float
) -> tuple[float | None, float, int]:
    ret = mask & (scores >= t)
    n = int(ret.sum())
    tp = int((ret & correct).sum())
    return (tp / n if n else None), (tp / n_gold if n_gold else 0.0), n


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------


def _plots(
    plots_dir: Path, model: str, att_acc: torch.Tensor, L: int, H: int, dirs, sweep: dict, causal: bool
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    slug = model.replace("/", "-")
    paths = []
    rels = list(HEATMAP_RELATIONS)
    ncol = 5
    nrow = math.ceil(len(rels) / ncol)
    wide = H >= L
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, (2.6 if wide else 4.6) * nrow), squeeze=False)
    for ax, rel in zip(axes.flat, rels):
        r = REL_ALL.index(rel)
        # direction chosen on the selection part, per head
        di = att_acc[:, :, SELECT, r].argmax(1)
        held = att_acc[torch.arange(att_acc.shape[0]), di, HELDOUT, r].view(L, H).numpy() * 100
        im = ax.imshow(held, aspect="auto", cmap="viridis", vmin=0, vmax=max(held.max(), 1))
        ax.set_title(f"{rel} (best {held.max():.0f}%)", fontsize=9)
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in list(axes.flat)[len(rels) :]:
        ax.axis("off")
    fig.suptitle(
        f"{model}: held-out accuracy of each raw attention head (Clark et al.'s protocol{', visible direction' if causal else ''})",
        fontsize=10,
    )
    fig.tight_layout()
    p = plots_dir / f"{slug}-heads.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5))
    ts = np.array(sweep["thresholds"])
    k7 = int(np.argmin(np.abs(ts - DEFAULT_THRESHOLD)))
    for rel in list(BAR_RELATIONS) + ["unlabelled"]:
        row = sweep["labelled"][rel] if rel != "unlabelled" else sweep["unlabelled"]
        P = np.array([np.nan if v is None else v for v in row["precision"]], dtype=float)
        R = np.array(row["recall"], dtype=float)
        style = dict(lw=2.5, color="black") if rel == "unlabelled" else dict(lw=1.2)
        (line,) = a1.plot(R, P, marker=".", ms=3, label=rel, **style)
        a1.plot([R[k7]], [P[k7]], "o", color=line.get_color(), ms=7, mfc="none")
        a2.plot(ts, P, marker=".", ms=3, label=rel, **style)
    a1.axhline(LABELLED_BAR[0], ls=":", color="grey")
    a1.axvline(LABELLED_BAR[1], ls=":", color="grey")
    a1.set_xlabel("held-out recall")
    a1.set_ylabel("held-out precision")
    a1.set_title("calibrated qk relation types (circle: threshold 0.7)")
    a1.set_xlim(0, 1)
    a1.set_ylim(0, 1.02)
    a1.legend(fontsize=8)
    a2.plot([0, 1], [0, 1], ls="--", color="grey", label="precision = threshold (calibrated curves should lie above)")
    a2.set_xlabel("threshold on the calibrated score")
    a2.set_ylabel("held-out precision of returned pairs")
    a2.set_title("calibration: threshold vs held-out precision")
    a2.set_xlim(0, 1)
    a2.set_ylim(0, 1.02)
    fig.suptitle(f"{model}", fontsize=10)
    fig.tight_layout()
    p = plots_dir / f"{slug}-calibration.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths


# --------------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------------


def run_evaluation(
    conllu_path,
    model: str = "all-minilm-l6-v2",
    select_on=None,
    max_sentences: int | None = None,
    plots_dir=None,
    seed: int = 0,
    *,
    write_labels: bool = False,
    labels_out=None,
    components: bool | None = None,
    loaded=None,
    quiet: bool = True,
) -> EvaluationReport:
    """Evaluate ``model`` on the gold trees of ``conllu_path`` (see the module docstring).

    Args:
        select_on: a CoNLL-U file to choose units on (then all of ``conllu_path`` is held out);
            default: even/odd documents of ``conllu_path``.
        max_sentences: only the first N sentences (of each file).
        plots_dir: write PNG heatmaps and precision/recall curves there.
        seed: seeds torch (the evaluation itself is deterministic).
        write_labels: write the relation-label artifact (``labels_out`` or pipeline/data/labels-<model>.json).
        components: also sweep every rank-1 component (the ``component`` method, and extra candidates
            for ``assembled``); default: only when the model has at most COMPONENT_LIMIT of them.
        loaded: an already loaded ``LoadedModel`` (skips loading).
    """
    from pipeline.model.adapters import load_model
    from pipeline.model.extractor import KnowledgeGraphExtractor

    t_start = time.time()
    torch.manual_seed(seed)
    lm = loaded if loaded is not None else load_model(model)
    ex = KnowledgeGraphExtractor(lm.model, lm.tokenizer)
    ad = ex.adapter
    causal = bool(ad.causal)
    L, H = ad.n_layers, ad.n_heads
    if components is None:
        components = L * H * ad.d_head <= COMPONENT_LIMIT
    corpus = build_corpus(conllu_path, lm.tokenizer, causal, select_on=select_on, max_sentences=max_sentences)
    if max(s.n_words for s in corpus.sentences) > 127:
        raise ValueError("sentences longer than 127 words are not supported by the int8 prediction store")
    _log(f"{lm.name}: {len(corpus.sentences)} sentences, {corpus.n_words} words, {len(corpus.arc_rel)} arcs", quiet)
    cache = ResidualCache()
    try:
        return _run(
            ex,
            lm,
            corpus,
            causal,
            components,
            quiet,
            seed,
            select_on,
            max_sentences,
            conllu_path,
            plots_dir,
            write_labels,
            labels_out,
            t_start,
            cache,
        )
    finally:
        cache.close()


def _run(
    ex,
    lm,
    corpus,
    causal,
    components,
    quiet,
    seed,
    select_on,
    max_sentences,
    conllu_path,
    plots_dir,
    write_labels,
    labels_out,
    t_start,
    cache,
) -> EvaluationReport:
    ad = ex.adapter
    L, H = ad.n_layers, ad.n_heads
    dirs = directions(causal)
    timings = {}
    with torch.no_grad():
        t = time.time()
        broad, feats = pass_broad(ex, corpus, causal, components, quiet, cache)
        timings["broad_pass_s"] = round(time.time() - t, 1)
        off_units = [Unit("offset", f"{o:+d}", offset=o) for o in OFFSETS]
        broad["offset"] = UnitSet(
            off_units,
            torch.from_numpy(np.stack([offset_predictions(corpus, o, causal) for o in OFFSETS])).to(torch.int8),
        )
        acc = {m: accuracy_table(corpus, us.preds, causal) for m, us in broad.items()}

        selected: dict[str, dict] = {rel: {} for rel in REL_ALL}
        for m in ("offset", "attention", "logit", "component", "rank_k"):
            if m not in broad:
                continue
            for r, rel in enumerate(REL_ALL):
                ui, di = select_best(acc[m], broad[m].units, dirs, r)
                selected[rel][m] = _entry(broad[m].units[ui], acc[m], ui, di, dirs, r) | {"_ui": ui, "_di": di}

        # assembled units
        assembled_units: list[Unit] = []
        t = time.time()
        plan = pass_assemble(
            ex,
            corpus,
            causal,
            broad.get("component"),
            acc.get("component"),
            broad["logit"],
            acc["logit"],
            quiet,
            seed,
            cache,
        )
        timings["assembly_pass_s"] = round(time.time() - t, 1)
        for rel, (layer, direction, comps) in plan.items():
            uid = assembled_id(layer, comps)
            if uid not in {u.id for u in assembled_units}:
                assembled_units.append(Unit("assembled", uid, layer, components=tuple(comps)))

        # the attachment of each qk unit: best subspace unit on the selection part (ungated)
        def attach_candidates(rel):
            cands = []
            for m in ("attention", "rank_k"):
                e = selected[rel][m]
                cands.append((e["select"], m, e["_ui"], e["_di"]))
            return cands

        t = time.time()
        asm = pass_specific(ex, corpus, causal, assembled_units, quiet, cache)
        timings["specific_pass_s"] = round(time.time() - t, 1)
        if assembled_units:
            broad["assembled"] = asm
            acc["assembled"] = accuracy_table(corpus, asm.preds, causal)
            for r, rel in enumerate(REL_ALL):
                layer, direction, comps = plan[rel]
                ui = [u.id for u in assembled_units].index(assembled_id(layer, comps))
                # direction: the better one on the selection part for this unit
                di = int(torch.argmax(acc["assembled"][ui, :, SELECT, r]))
                selected[rel]["assembled"] = _entry(assembled_units[ui], acc["assembled"], ui, di, dirs, r) | {
                    "_ui": ui,
                    "_di": di,
                }

        # qk units
        gold_lab, gold_unl = _gold_sets(corpus)
        qk_query_cal = {}
        split = corpus.word_split
        valid = corpus.word_valid
        qk_units = {}
        docs = np.array([corpus.sentences[k].doc for k in corpus.word_sent])
        gpos = corpus.word_offset[corpus.word_sent]
        fit_mask = (split == SELECT) & valid
        fm = torch.from_numpy(fit_mask)
        groups = docs[fit_mask] // 2 if select_on is None else docs[fit_mask]
        for rel in RELATIONS:
            cands = attach_candidates(rel)
            if "assembled" in selected[rel]:
                e = selected[rel]["assembled"]
                cands.append((e["select"], "assembled", e["_ui"], e["_di"]))
            _, m, ui, di = max(cands, key=lambda c: c[0])
            unit = broad[m].units[ui]
            direction = dirs[di]
            preds = broad[m].preds[ui].long().numpy()
            top = broad[m].top[ui].float().numpy()
            has = preds >= 0
            key = torch.from_numpy(np.where(has, gpos + preds, np.arange(len(preds))))
            y = torch.from_numpy(query_target(corpus, rel, direction)[fit_mask])
            correct = pair_correct(corpus, preds, rel, direction, gold_lab)
            r = REL_ALL.index(rel)
            q, tgt = arc_query_target(corpus, direction)
            for kind in ("qk", "qk_query"):
                if kind == "qk":  # endpoint gate: the query word and the word it attaches to
                    feat = {
                        l: (lambda f=f: torch.cat([f[fm].float(), f[key[fm]].float()], 1)) for l, f in feats.items()
                    }
                    gate = fit_gate(feat, y, groups, endpoints="query+key")
                    f = feats[gate.layer]
                    X = torch.cat([f.float(), f[key].float()], 1)
                    qk_layer = gate.layer
                else:  # query-side gate only, on the layer chosen for the endpoint gate
                    f = feats[qk_layer]
                    gate = fit_gate(
                        {qk_layer: lambda f=f: f[fm].float()}, y, groups, l2_grid=(1e-2,), endpoints="query"
                    )
                    X = feats[gate.layer].float()
                g = gate.prob(X).numpy()
                score = g * top
                cal_mask = (split == SELECT) & has
                knots = isotonic_fit(score[cal_mask], correct[cal_mask].astype(float))
                calibrated = isotonic_predict(knots, score)
                calibrated[~has] = 0.0
                gated = {}
                for sp in (SELECT, HELDOUT):  # Clark's protocol, counted only where the gate fires
                    am = corpus.arc_mask(rel, sp)
                    gated[sp] = float(((preds[q[am]] == tgt[am]) & (g[q[am]] >= GATE_ON)).mean()) if am.any() else 0.0
                qid = f"{'qk' if kind == 'qk' else 'qkq'}:{rel}:{unit.id}"
                selected[rel][kind] = {
                    "unit": qid,
                    "attachment": unit.id,
                    "attachment_method": m,
                    "direction": direction,
                    "gate_layer": gate.layer,
                    "select": round(gated[SELECT], 4),
                    "heldout": round(gated[HELDOUT], 4),
                    "attachment_heldout": round(float(acc[m][ui, di, HELDOUT, r]), 4),
                }
                if kind == "qk":
                    qk_units[rel] = dict(
                        unit=unit,
                        method=m,
                        direction=direction,
                        gate=gate,
                        knots=knots,
                        calibrated=calibrated,
                        correct=correct,
                        preds=preds,
                        score=score,
                    )
                else:
                    n_gold = int(corpus.arc_mask(rel, HELDOUT).sum())
                    p, rc, n = pr_at(calibrated, correct, split == HELDOUT, n_gold, DEFAULT_THRESHOLD)
                    qk_query_cal[rel] = [None if p is None else round(p, 4), round(rc, 4)]

        # threshold sweep on the held-out part
        held = split == HELDOUT
        sweep = {"thresholds": list(THRESHOLDS), "labelled": {}, "unlabelled": None}
        calib = {"threshold": DEFAULT_THRESHOLD, "labelled": {}, "unlabelled": None, "returned": {}}
        ts = sorted(set(THRESHOLDS) | {DEFAULT_THRESHOLD})
        for rel, qu in qk_units.items():
            n_gold = int(corpus.arc_mask(rel, HELDOUT).sum())
            ps, rs = [], []
            for tt in THRESHOLDS:
                p, rc, _ = pr_at(qu["calibrated"], qu["correct"], held, n_gold, tt)
                ps.append(None if p is None else round(p, 4))
                rs.append(round(rc, 4))
            sweep["labelled"][rel] = {"precision": ps, "recall": rs}
            p, rc, n = pr_at(qu["calibrated"], qu["correct"], held, n_gold, DEFAULT_THRESHOLD)
            calib["labelled"][rel] = [None if p is None else round(p, 4), round(rc, 4)]
            calib["returned"][rel] = n
        # unlabelled: union of the pairs returned by all qk units
        held_unl = {pr for pr in gold_unl if split[pr[0]] == HELDOUT}
        n_gold_unl = len(held_unl)
        calib["labelled_query_gate"] = qk_query_cal
        ups, urs = [], []
        for tt in ts:
            pairs = set()
            for qu in qk_units.values():
                idx = np.nonzero(held & (qu["calibrated"] >= tt) & (qu["preds"] >= 0))[0]
                j = gpos[idx] + qu["preds"][idx]
                pairs.update(zip(np.minimum(idx, j).tolist(), np.maximum(idx, j).tolist()))
            tp = len(pairs & held_unl)
            p = tp / len(pairs) if pairs else None
            rc = tp / n_gold_unl if n_gold_unl else 0.0
            if tt in THRESHOLDS:
                ups.append(None if p is None else round(p, 4))
                urs.append(round(rc, 4))
            if tt == DEFAULT_THRESHOLD:
                calib["unlabelled"] = [None if p is None else round(p, 4), round(rc, 4)]
                calib["returned"]["unlabelled"] = len(pairs)
        sweep["unlabelled"] = {"precision": ups, "recall": urs}

        # label artifact: top-3 subspaces per layer by logit spread, plus the qk units
        t = time.time()
        rank = broad["rank_k"]
        rank_index = {u.id: i for i, u in enumerate(rank.units)}
        entries = {}
        raw_pairs, raw_lab_tp, raw_n = set(), 0, 0
        label_ids = []
        for l in range(L):
            for s in ex.extract_relational_subspaces(l, top_k=3):
                label_ids.append(s.id)
        rel_idx = [REL_ALL.index(r) for r in RELATIONS]
        for sid in label_ids:
            if sid not in rank_index:
                continue
            ui = rank_index[sid]
            a = acc["rank_k"][ui][:, SELECT][:, rel_idx]  # [D, R]
            flat = int(torch.argmax(a.reshape(-1)))
            di, rj = flat // len(RELATIONS), flat % len(RELATIONS)
            rel, direction = RELATIONS[rj], dirs[di]
            held_acc = float(acc["rank_k"][ui, di, HELDOUT, REL_ALL.index(rel)])
            preds = rank.preds[ui].long().numpy()
            top = rank.top[ui].float().numpy()
            correct = pair_correct(corpus, preds, rel, direction, gold_lab)
            has = preds >= 0
            knots = isotonic_fit(top[(split == SELECT) & has], correct[(split == SELECT) & has].astype(float))
            cal = isotonic_predict(knots, top)
            n_gold = int(corpus.arc_mask(rel, HELDOUT).sum())
            p, rc, n = pr_at(cal, correct & has, held & has, n_gold, DEFAULT_THRESHOLD)
            xs, ys = compress_knots(*knots)
            entries[sid] = {
                "kind": "subspace",
                "label": rel if held_acc >= ACCURACY_FLOOR else None,
                "best_relation": rel,
                "direction": direction,
                "accuracy": round(held_acc, 4),
                "select_accuracy": round(float(acc["rank_k"][ui, di, SELECT, REL_ALL.index(rel)]), 4),
                "heldout_at_threshold": {
                    "precision": None if p is None else round(p, 4),
                    "recall": round(rc, 4),
                    "returned": n,
                },
                "calibration": {
                    "x": xs,
                    "y": ys,
                    "target": f"pair (query, argmax) is a gold {rel} arc ({direction})",
                    "score": "word-level attention share of the subspace",
                },
            }
            # uncalibrated unlabelled precision at share >= 0.7
            idx = np.nonzero(held & has & (top >= DEFAULT_THRESHOLD))[0]
            j = gpos[idx] + preds[idx]
            raw_n += len(idx)
            raw_pairs.update(zip(np.minimum(idx, j).tolist(), np.maximum(idx, j).tolist()))
            raw_lab_tp += int(correct[idx].sum())
        raw_prec = len(raw_pairs & held_unl) / len(raw_pairs) if raw_pairs else None
        # the best raw attention head for "all": where does its attention >= 0.7 land?
        att_all = selected[ALL]["attention"]
        ua = [u.id for u in broad["attention"].units].index(att_all["unit"])
        pa = broad["attention"].preds[ua].long().numpy()
        va = broad["attention"].top[ua].float().numpy()
        idx = np.nonzero(held & (pa >= 0) & (va >= DEFAULT_THRESHOLD))[0]
        j = gpos[idx] + pa[idx]
        hp = set(zip(np.minimum(idx, j).tolist(), np.maximum(idx, j).tolist()))
        best_head_unl = {
            "unit": att_all["unit"],
            "precision": round(len(hp & held_unl) / len(hp), 4) if hp else None,
            "returned": len(hp),
        }
        for rel, qu in qk_units.items():
            u = qu["unit"]
            xs, ys = compress_knots(*qu["knots"])
            e = selected[rel]["qk"]
            entries[e["unit"]] = {
                "kind": "qk",
                "label": rel if e["heldout"] >= ACCURACY_FLOOR else None,
                "best_relation": rel,
                "direction": qu["direction"],
                "accuracy": e["heldout"],
                "select_accuracy": e["select"],
                "attachment": {
                    "id": u.id,
                    "method": qu["method"],
                    "layer": u.layer,
                    "head": u.head,
                    "k": u.k,
                    "components": [list(c) for c in u.components],
                    "heldout_accuracy": e["attachment_heldout"],
                },
                "heldout_at_threshold": {
                    "precision": calib["labelled"][rel][0],
                    "recall": calib["labelled"][rel][1],
                    "returned": calib["returned"][rel],
                },
                "gate": qu["gate"].to_json(),
                "calibration": {
                    "x": xs,
                    "y": ys,
                    "target": f"pair (query, argmax) is a gold {rel} arc ({qu['direction']})",
                    "score": "gate(query) x word-level attention share",
                },
            }
        timings["labels_s"] = round(time.time() - t, 1)

    counts = corpus.counts()
    accuracy = {rel: {} for rel in REL_ALL}
    for rel in REL_ALL:
        for m in METHODS:
            e = selected[rel].get(m)
            accuracy[rel][m] = None if e is None else e["heldout"]
    for rel in REL_ALL:
        for e in selected[rel].values():
            e.pop("_ui", None)
            e.pop("_di", None)
    n_labelled = sum(1 for e in entries.values() if e["label"])
    labels_info = {"n_labelled": n_labelled, "n_entries": len(entries), "path": None}
    diagnostics = {
        "timings": timings,
        "n_sentences": len(corpus.sentences),
        "n_words": corpus.n_words,
        "skipped_arcs": int(sum(s.n_skipped for s in corpus.sentences)),
        "unaligned_words": int((~corpus.word_valid).sum()),
        "raw_unlabelled": {
            "n_subspaces": len(label_ids),
            "precision": None if raw_prec is None else round(raw_prec, 4),
            "returned": len(raw_pairs),
            "labelled_precision": round(raw_lab_tp / raw_n, 4) if raw_n else None,
        },
        "best_head_unlabelled": best_head_unl,
        "gate_threshold": GATE_ON,
        "prefix_token": corpus.sentences[0].ids[0] if causal else None,
    }
    report = EvaluationReport(
        model=lm.name,
        source=corpus.source,
        split=corpus.split_rule,
        causal=causal,
        counts=counts,
        accuracy=accuracy,
        selected=selected,
        calibration=calib,
        sweep=sweep,
        labels=labels_info,
        diagnostics=diagnostics,
        runtime_s=0.0,
    )
    if write_labels:
        out = Path(labels_out) if labels_out is not None else labels_path(lm.name)
        artifact = {
            "schema": LABELS_SCHEMA,
            "model": lm.name,
            "model_layout": ad.describe(),
            "data_source": corpus.source,
            "split": corpus.split_rule,
            "date": _dt.date.today().isoformat(),
            "generated_by": f"python -m pipeline.evaluation {conllu_path} --model {lm.name} --write-labels"
            + (f" --select-on {select_on}" if select_on else "")
            + (f" --max-sentences {max_sentences}" if max_sentences else "")
            + (" --components" if "component" in broad and L * H * ad.d_head > COMPONENT_LIMIT else ""),
            "accuracy_floor": ACCURACY_FLOOR,
            "protocol": "Clark et al. 2019 word-level argmax; accuracy is held-out; calibration is isotonic (PAV) fitted on the selection part",
            "default_threshold": DEFAULT_THRESHOLD,
            "gate_threshold": GATE_ON,
            "subspaces": entries,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_artifact_json(artifact), "utf-8")
        report.labels["path"] = str(out)
    if plots_dir is not None:
        report.plots = _plots(Path(plots_dir), lm.name, acc["attention"], L, H, dirs, sweep, causal)
    report.runtime_s = time.time() - t_start
    report.diagnostics["timings"]["total_s"] = round(report.runtime_s, 1)
    return report


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.evaluation",
        description="Dependency-relation fidelity of a model's QK circuits (Clark et al.'s protocol) on CoNLL-U gold trees.",
    )
    ap.add_argument("conllu", help="gold CoNLL-U file (scored; also the selection part unless --select-on)")
    ap.add_argument(
        "--model", default="all-minilm-l6-v2", help="all-minilm-l6-v2 (default) or smollm2, or a model path"
    )
    ap.add_argument("--json", action="store_true", help="end the output with one line of JSON")
    ap.add_argument("--plots", metavar="DIR", help="write PNG heatmaps and precision/recall curves to DIR")
    ap.add_argument("--select-on", metavar="FILE", help="choose units on this CoNLL-U file and score all of CONLLU")
    ap.add_argument("--max-sentences", type=int, metavar="N", help="use only the first N sentences")
    ap.add_argument("--write-labels", action="store_true", help="write pipeline/data/labels-<model>.json")
    ap.add_argument("--labels-out", metavar="FILE", help="write the label artifact here instead")
    comp = ap.add_mutually_exclusive_group()
    comp.add_argument(
        "--components",
        dest="components",
        action="store_true",
        default=None,
        help=f"sweep every rank-1 component (default: only for models with at most {COMPONENT_LIMIT})",
    )
    comp.add_argument(
        "--no-components", dest="components", action="store_false", help="skip the rank-1 component sweep"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("QKGRAPH_EVAL_THREADS", "1")),
        help="torch CPU threads (default 1)",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(max(1, args.threads))
    report = run_evaluation(
        args.conllu,
        model=args.model,
        select_on=args.select_on,
        max_sentences=args.max_sentences,
        plots_dir=args.plots,
        seed=args.seed,
        write_labels=args.write_labels or bool(args.labels_out),
        labels_out=args.labels_out,
        components=args.components,
        quiet=args.quiet,
    )
    print(report.to_markdown())
    if args.json:
        print(json.dumps(report.to_json(), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
