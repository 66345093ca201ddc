"""The evaluation's report: held-out accuracy per relation and method, the four gate kinds of the typed
relations side by side, the calibrated typed relations against their bars, as markdown tables and as
one JSON object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.evaluation.corpus import ALL, REL_ALL, RELATIONS
from pipeline.relations.calibration import DEFAULT_THRESHOLD
from pipeline.relations.labels import ACCURACY_FLOOR

METHODS = ("offset", "attention", "logit", "component", "rank_k", "assembled", "qk")
BAR_RELATIONS = ("nsubj", "obj", "amod", "det", "case", "compound", "aux", "nmod:poss")
BETWEEN_SPANS = ("iobj", "obl", "nmod", "conj", "xcomp")
"""Relations whose arcs mostly join two spans (beyond the bar relations), shown in the gate table."""
GATE_KIND_ORDER = ("subspace", "residual", "query", "none")
LABELLED_BAR = (0.7, 0.2)  # precision >= 0.7 with recall >= 0.2 at the default threshold
UNLABELLED_BAR = 0.85

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


@dataclass
class EvaluationReport:
    """What one evaluation found; ``to_json`` is the CLI's last line, ``to_markdown`` its tables."""

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
    gate_comparison: dict = field(default_factory=dict)
    typed: Any = field(default=None, repr=False)
    """The TypedEvaluation (TypedRelation objects, fit-side and library per-word scores); not in the JSON."""

    @property
    def macro(self) -> dict[str, float | None]:
        """Mean held-out accuracy over the evaluated relations per method (None: the method did not run)."""
        out: dict[str, float | None] = {}
        for m in METHODS:
            vals = [self.accuracy[r].get(m) for r in RELATIONS]
            vals = [v for v in vals if v is not None]
            out[m] = round(float(np.mean(vals)), 4) if vals else None
        return out

    def bars(self) -> dict:
        """Whether each labelled bar (precision, recall at the default threshold) and the unlabelled one are met."""
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
            "gate_comparison": self.gate_comparison,
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
        lines.append(
            f"| **macro** ({len(RELATIONS)} relations) | | | " + " | ".join(pct(mac[m]) for m in METHODS) + " |"
        )
        lines += ["", f"### {self.model}: chosen unit per relation and method (direction; selection-part accuracy)", ""]
        lines += ["| relation | " + " | ".join(METHODS) + " |", "|" + "---|" * (1 + len(METHODS))]
        for r in REL_ALL:
            cells = []
            for m in METHODS:
                s = self.selected[r].get(m)
                cells.append("—" if not s else f"`{s['unit']}` {_short_dir(s['direction'])} {100 * s['select']:.0f}")
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines += self._gate_table(pct)
        kind = self.calibration.get("gate_kind", "?")
        lines += [
            "",
            f"### {self.model}: calibrated typed relations (`{kind}` gates) at threshold {DEFAULT_THRESHOLD} (held-out)",
            "",
        ]
        lines += [
            "| relation | attachment (gate layer) | precision | recall | returned pairs | bar (P>=0.7, R>=0.2) |",
            "|---|---|---|---|---|---|",
        ]
        bars = self.bars()
        for r in RELATIONS:
            p, rc = self.calibration["labelled"][r]
            n = self.calibration["returned"][r]
            e = self.selected[r].get("qk", {})
            unit = f"`{e.get('attachment', '—')}` ({e.get('gate_layer', '—')})"
            bar = ("met" if bars["labelled"][r] else "**not met**") if r in BAR_RELATIONS else ""
            lines.append(f"| {r} | {unit} | {pct(p)} | {pct(rc)} | {n} | {bar} |")
        up, ur = self.calibration["unlabelled"]
        lines.append(
            f"| **unlabelled** (union of the typed relations) | | {pct(up)} | {pct(ur)} | {self.calibration['returned']['unlabelled']} | {'met' if bars['unlabelled'] else '**not met**'} (P>=0.85) |"
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

    def _gate_table(self, pct) -> list[str]:
        """The four gate kinds side by side: labelled P / R / F1 at the default threshold, selection
        part (out of fold) and held out, and the rule's decision."""
        gc = self.gate_comparison
        if not gc:
            return []
        kinds = [k for k in GATE_KIND_ORDER if k in gc["relations"]]
        lines = [
            "",
            f"### {self.model}: gate kinds side by side (labelled P / R / F1 at {DEFAULT_THRESHOLD}, %; "
            "selection part out of fold | held out)",
            "",
            "| relation | " + " | ".join(f"{k} select | {k} held out" for k in kinds) + " |",
            "|---|" + "---|---|" * len(kinds),
        ]
        fmt = lambda v: "/".join(pct(x) for x in v)  # noqa: E731
        rels = [r for r in (*BAR_RELATIONS, *BETWEEN_SPANS) if r in gc["relations"][kinds[0]]]
        for r in rels:
            cells = [f"{fmt(gc['relations'][k][r]['select'])} | {fmt(gc['relations'][k][r]['heldout'])}" for k in kinds]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        mf = gc["macro_f1"]
        cells = [f"F1 {pct(mf[k]['select'])} | F1 {pct(mf[k]['heldout'])}" for k in kinds]
        lines.append(f"| **macro over the {len(gc['rule_relations'])}** | " + " | ".join(cells) + " |")
        d = gc["residual_minus_subspace"]
        lines += [
            "",
            f"Rule: {gc['rule']}. Residual minus subspace macro F1: selection {100 * d['select']:+.1f} points, "
            f"held out {100 * d['heldout']:+.1f} points. **Chosen: `{gc['chosen']}`.**",
        ]
        return lines


def _short_dir(d: str) -> str:
    """The direction's short name in the markdown tables."""
    return {"dep2head": "d→h", "head2dep": "h→d", "visible": "vis"}.get(d, d)
