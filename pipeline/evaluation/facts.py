"""``qkgraph eval-facts``: facts scored against gold facts of UD trees, side by side with peers.

Gold facts come from the gold UD trees by the composer's own rules (``pipeline.relations.facts.
gold_facts``: nsubj/nsubj:pass + obj/iobj, + obl with its case word, + cop; nmod:poss), with nominal
subjects and objects. A fact is matched on (subject word, predicate word, preposition, object
word): each predicted word is mapped to the gold word its characters overlap first, the preposition
is compared as lowercased text, and possession facts have no predicate word. Each distinct key
counts once per row (its best score).

Rows, on the same documents in one run:

* ``qkgraph``: the facts ``qkgraph ingest`` puts in the graph (``analyze_documents``: the typed QK
  arcs of every sentence, composed, lifted to spans), swept over the fact threshold;
* ``spacy``: the same composer and lifting fed by spaCy's own parse (``spacy_arcs``), a supervised
  reference (its arcs have no probability: one point);
* ``mama``: a MAMA-style attention-path baseline (Wang et al. 2020; ``bench/fact_baselines.py``):
  noun-chunk pairs, attention averaged over the heads of a layer, beam search, relation = the tokens
  on the path, matching-degree and frequency thresholds (chosen on the selection documents);
* ``proximity``: the nearest noun chunks before and after each verb (one point).

Without ``--select-on`` the file is split by document as ``qkgraph eval`` splits it (even-numbered
documents: selection, odd: scored); with it, anything tunable is chosen on that file and CONLLU is
scored whole.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import importlib.util
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pipeline.relations.calibration import compress_knots, isotonic_fit, isotonic_predict
from pipeline.relations.facts import (
    Arc,
    WordFact,
    calibration_group,
    gold_facts,
    group_knots,
    lift_facts,
    spacy_arcs,
)
from pipeline.text.conllu import ConlluDocument, read_conllu_documents
from pipeline.text.sources import xml_safe
from pipeline.types import Document, DocumentAnalysis, SpanFact, Word

ROWS = ("qkgraph", "spacy", "mama", "proximity")
SWEEP = tuple(round(0.05 * k, 2) for k in range(0, 20))
"""Fact thresholds of the qkgraph curve."""
MAMA_DEGREES = tuple(round(0.02 * k, 2) for k in range(0, 26))
MAMA_FREQUENCIES = (1, 2, 3, 5, 10)
BAR_PRECISION = 0.6
BAR_F1_RATIO = 2.0


@dataclass(frozen=True)
class FactKey:
    """What a fact is matched on: gold word indices of subject, predicate (-1: none) and object, and the
    preposition as lowercased text ("" none), within one document."""

    document: str
    subject: int
    predicate: int
    preposition: str
    object: int


@dataclass
class GoldFactDocument:
    """One gold document: its text as the ingest builds it, its gold words (document offsets) and facts."""

    id: str
    text: str
    n_sentences: int
    words: list[Word]
    facts: set[FactKey]
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def word_at(self, start: int, end: int) -> int:
        """The first gold word overlapping [start, end), or -1."""
        first = bisect.bisect_right(self.ends, start)
        for w in range(first, len(self.starts)):
            if self.starts[w] >= end:
                break
            if self.ends[w] > start:
                return w
        return -1


def gold_fact_document(doc: ConlluDocument) -> GoldFactDocument:
    """Gold words (aligned ones only) and the gold facts of one CoNLL-U document."""
    doc_id = xml_safe(doc.id)[0]
    words: list[Word] = []
    arcs: list[Arc] = []
    for si, ((offset, _), sentence) in enumerate(zip(doc.sentence_offsets(), doc.sentences, strict=True)):
        index: dict[int, int] = {}
        for t in sentence.tokens:
            if t.end_char > t.start_char:
                index[t.id] = len(words)
                words.append(Word(offset + t.start_char, offset + t.end_char, si, t.form, t.lemma, t.upos))
        for t in sentence.tokens:
            if t.head and t.id in index and t.head in index:
                arcs.append(Arc(index[t.head], index[t.id], t.deprel))
    gold = GoldFactDocument(doc_id, xml_safe(doc.text)[0], len(doc.sentences), words, set())
    gold.starts = [w.start for w in words]
    gold.ends = [w.end for w in words]
    keys = (_word_fact_key(gold, words, f) for f in gold_facts(words, arcs))
    gold.facts = {k for k in keys if k is not None}
    return gold


def _word_fact_key(gold: GoldFactDocument, words: Sequence[Word], f: WordFact) -> FactKey | None:
    def at(i: int) -> int:
        return gold.word_at(words[i].start, words[i].end) if i >= 0 else -1

    s, o = at(f.subject), at(f.object)
    if s < 0 or o < 0 or s == o:
        return None
    prep = words[f.preposition].text.casefold() if f.preposition >= 0 else ""
    return FactKey(gold.id, s, at(f.predicate_word), prep, o)


def span_fact_key(gold: GoldFactDocument, f: SpanFact) -> FactKey | None:
    """The match key of a product fact, from the word offsets of its arcs (``SpanFact.arcs``)."""
    by_rel = {a.relation: a for a in f.arcs}
    first = f.arcs[0]
    if f.kind == "copula":
        cop = by_rel["cop"]  # the nominal heads the copula (its subject may be shared from another word)
        obj = (cop.head_start, cop.head_end)
    elif f.kind == "possession":
        obj = (first.head_start, first.head_end)  # the possessed heads nmod:poss
    else:
        # the object word: the obl's, or the obj's (an object with its own case word is an oblique)
        arc = next(a for a in reversed(f.arcs) if a.relation in ("obl", "obj", "iobj"))
        obj = (arc.dependent_start, arc.dependent_end)
    s = gold.word_at(first.dependent_start, first.dependent_end)
    o = gold.word_at(*obj)
    if s < 0 or o < 0 or s == o:
        return None
    pred = gold.word_at(f.predicate_start, f.predicate_end) if f.predicate_start >= 0 else -1
    case = by_rel.get("case")
    prep = gold.text[case.dependent_start : case.dependent_end].casefold() if case else ""
    return FactKey(gold.id, s, pred, prep, o)


Claims = dict[FactKey, float]
"""A row's distinct fact keys with their best score."""


def _claim(claims: Claims, key: FactKey | None, score: float) -> None:
    if key is not None and score > claims.get(key, -1.0):
        claims[key] = score


@dataclass(frozen=True)
class Point:
    """Precision, recall and F1 of a row at one threshold."""

    threshold: float
    predicted: int
    correct: int
    gold: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "predicted": self.predicted,
            "correct": self.correct,
            "gold": self.gold,
        }


def score_claims(claims: Claims, gold: set[FactKey], threshold: float = 0.0) -> Point:
    """The row's point at ``threshold`` (claims with a score >= threshold)."""
    kept = [k for k, v in claims.items() if v >= threshold]
    return Point(threshold, len(kept), sum(1 for k in kept if k in gold), len(gold))


# ── the rows ─────────────────────────────────────────────────────────────────────────────────────


@dataclass
class Part:
    """The documents of one part (selection or scored): gold, ingest documents, spaCy docs."""

    gold: dict[str, GoldFactDocument]
    documents: list[Document]
    docs: list[Any] = field(default_factory=list)  # spaCy Doc per document

    @property
    def gold_keys(self) -> set[FactKey]:
        return {k for g in self.gold.values() for k in g.facts}

    @property
    def n_sentences(self) -> int:
        return sum(g.n_sentences for g in self.gold.values())


def read_part(docs: Iterable[ConlluDocument]) -> Part:
    """Gold facts and ingest documents of some CoNLL-U documents (the first of a repeated id)."""
    gold: dict[str, GoldFactDocument] = {}
    for doc in docs:
        g = gold_fact_document(doc)
        if g.id not in gold and g.text.strip():
            gold[g.id] = g
    return Part(gold, [Document(g.id, g.text, source=g.id) for g in gold.values()])


def qkgraph_claims(part: Part, analyses: Iterable[DocumentAnalysis], kinds: dict[FactKey, str] | None = None) -> Claims:
    """The product's facts as claims (``analyses`` made with fact threshold 0: the sweep cuts);
    ``kinds`` gets the calibration group of each claim (``calibration_group``: kind, or kind:shared)."""
    claims: Claims = {}
    for a in analyses:
        g = part.gold[a.document.id]
        for f in a.facts:
            key = span_fact_key(g, f)
            if key is not None and f.probability > claims.get(key, -1.0):
                claims[key] = f.probability
                if kinds is not None:
                    kinds[key] = calibration_group(f.kind, f.arcs)
    return claims


def spacy_claims(part: Part, word_pos: Sequence[str]) -> Claims:
    """The composer fed by spaCy's parse, lifted to the product's spans (probability 1.0)."""
    from pipeline.relations.extract import word_spans
    from pipeline.relations.facts import compose_facts
    from pipeline.text.spans import SpanOptions, document_spans, document_words

    claims: Claims = {}
    for document, doc in zip(part.documents, part.docs, strict=True):
        g = part.gold[document.id]
        words = document_words(doc)
        _, spans = document_spans(doc, SpanOptions(word_pos=tuple(word_pos)), doc_id=document.id)
        facts = lift_facts(compose_facts(words, spacy_arcs(doc), floor=0.0), words, word_spans(words, spans), spans)
        for f in facts:
            _claim(claims, span_fact_key(g, f), f.probability)
    return claims


def word_fact_claims(part: Part, per_document: Sequence[Sequence[WordFact]]) -> Claims:
    """Claims of a baseline's WordFacts (over each document's spaCy words)."""
    from pipeline.text.spans import document_words

    claims: Claims = {}
    for document, doc, facts in zip(part.documents, part.docs, per_document, strict=True):
        g = part.gold[document.id]
        words = document_words(doc)
        for f in facts:
            _claim(claims, _word_fact_key(g, words, f), f.probability)
    return claims


def load_baselines(path: Path | None = None) -> ModuleType:
    """The baselines module (``bench/fact_baselines.py`` of the checkout, or ``path``)."""
    path = path or Path(__file__).resolve().parents[2] / "bench" / "fact_baselines.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"the fact baselines are not at {path}: run eval-facts from a qkgraph checkout (they live in bench/)"
        )
    spec = importlib.util.spec_from_file_location("qkgraph_fact_baselines", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ── the run ──────────────────────────────────────────────────────────────────────────────────────


@dataclass
class FactEvaluation:
    """Everything ``qkgraph eval-facts`` reports."""

    model: str
    default_threshold: float
    rows: dict[str, Point]
    curves: dict[str, list[Point]]
    tuned: dict[str, Any]
    selection: dict[str, Point]
    reliability: list[dict[str, float | int]]
    n_documents: int
    n_sentences: int
    n_gold: int
    seconds: dict[str, float]
    calibration: dict[str, Any] | None = None

    def bar(self) -> dict[str, Any]:
        q, m = self.rows["qkgraph"], self.rows.get("mama")
        ratio = q.f1 / m.f1 if m is not None and m.f1 > 0 else None
        return {
            "precision": round(q.precision, 4),
            "precision_bar": BAR_PRECISION,
            "f1_ratio_vs_mama": None if ratio is None else round(ratio, 2),
            "f1_ratio_bar": BAR_F1_RATIO,
            "met": q.precision >= BAR_PRECISION and (ratio is None or ratio >= BAR_F1_RATIO),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": {
                name: {"precision": round(p.precision, 4), "recall": round(p.recall, 4), "f1": round(p.f1, 4)}
                | {"predicted": p.predicted, "correct": p.correct, "threshold": p.threshold}
                for name, p in self.rows.items()
            },
            "model": self.model,
            "default_threshold": self.default_threshold,
            "documents": self.n_documents,
            "sentences": self.n_sentences,
            "gold_facts": self.n_gold,
            "tuned": self.tuned,
            "selection": {name: p.to_json() for name, p in self.selection.items()},
            "curves": {name: [p.to_json() for p in c] for name, c in self.curves.items()},
            "reliability": self.reliability,
            "bar": self.bar(),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "calibration_fitted": self.calibration is not None,
        }

    def to_markdown(self) -> str:
        lines = [
            f"Facts on {self.n_documents} documents ({self.n_sentences} sentences, {self.n_gold} gold facts), "
            f"model {self.model}:",
            "",
            "| row | threshold | facts | correct | precision | recall | F1 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, p in self.rows.items():
            lines.append(
                f"| {name} | {p.threshold:g} | {p.predicted} | {p.correct} | {p.precision:.3f} | {p.recall:.3f} | {p.f1:.3f} |"
            )
        b = self.bar()
        lines += [
            "",
            f"bar: qkgraph precision {b['precision']:.3f} (>= {BAR_PRECISION}), F1 / mama "
            f"{b['f1_ratio_vs_mama']} (>= {BAR_F1_RATIO}): {'met' if b['met'] else 'NOT met'}",
        ]
        return "\n".join(lines)


def _reliability(
    claims: Claims, gold: set[FactKey], edges: Sequence[float] = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)
) -> list[dict[str, float | int]]:
    out: list[dict[str, float | int]] = []
    for lo, hi in itertools.pairwise(edges):
        scores = [(v, k in gold) for k, v in claims.items() if lo <= v < hi]
        if scores:
            out.append(
                {
                    "from": lo,
                    "to": min(hi, 1.0),
                    "facts": len(scores),
                    "mean_probability": round(sum(v for v, _ in scores) / len(scores), 4),
                    "precision": round(sum(1 for _, ok in scores if ok) / len(scores), 4),
                }
            )
    return out


def _best(points: Iterable[Point]) -> Point:
    return max(points, key=lambda p: (p.f1, p.precision, -p.threshold))


def evaluate_facts(
    scored: Part,
    select: Part,
    models: Any,
    baselines: ModuleType | None,
    default_threshold: float,
    on_progress: Callable[[str], None] = lambda _: None,
    fit_calibration: bool = False,
) -> FactEvaluation:
    """Run the four rows on ``select`` (to tune) and ``scored``; ``models``: ``ingest.models.Models``
    loaded with fact threshold 0.

    ``fit_calibration``: fit the fact calibration map on the selection documents' facts (their
    uncalibrated products against gold) and score ``scored`` with it (``FactEvaluation.calibration``
    holds it, for ``--write-calibration``); else the map the models carry is used throughout."""
    from pipeline.ingest.models import analyze_documents

    seconds: dict[str, float] = {}
    nlp = models.nlp
    for part in (select, scored):
        part.docs = list(nlp.pipe([d.text for d in part.documents], batch_size=16))
    word_pos = models.settings.word_pos

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0

    claims: dict[str, dict[str, Claims]] = {"select": {}, "scored": {}}
    calibration: dict[str, Any] | None = None
    for label, part in (("select", select), ("scored", scored)):
        on_progress(f"{label}: qkgraph ({len(part.documents)} documents)")
        if label == "select" and fit_calibration:
            models.fact_knots = None
        kinds: dict[FactKey, str] = {}
        with timed("qkgraph"):
            claims[label]["qkgraph"] = qkgraph_claims(part, analyze_documents(part.documents, models), kinds)
        if label == "select" and fit_calibration:
            calibration = fit_fact_calibration(claims["select"]["qkgraph"], kinds, select.gold_keys)
            knots = calibration_knots(calibration)  # has "*": every group finds a map
            models.fact_knots = knots
            raw = claims["select"]["qkgraph"]
            claims["select"]["qkgraph"] = {
                k: float(isotonic_predict(group_knots(knots, kinds[k]) or knots["*"], [v])[0]) for k, v in raw.items()
            }
        on_progress(f"{label}: spacy")
        with timed("spacy"):
            claims[label]["spacy"] = spacy_claims(part, word_pos)
        if baselines is not None:
            on_progress(f"{label}: proximity")
            with timed("proximity"):
                per_doc = [baselines.proximity_facts(doc) for doc in part.docs]
                claims[label]["proximity"] = word_fact_claims(part, per_doc)
    tuned: dict[str, Any] = {}
    mama_scored: Claims | None = None
    if baselines is not None:
        on_progress("mama: attention")
        attention = baselines.default_attention_fn(models)
        t0 = time.perf_counter()
        cand_select = baselines.mama_candidates(select.docs, attention)
        cand_scored = baselines.mama_candidates(scored.docs, attention)
        seconds["mama"] = time.perf_counter() - t0
        gold_select = select.gold_keys
        grid = []
        for freq in MAMA_FREQUENCIES:
            per_doc = baselines.mama_facts(cand_select, 0.0, freq)
            c = word_fact_claims(select, per_doc)
            for deg in MAMA_DEGREES:
                grid.append((score_claims(c, gold_select, deg), freq))
        best_point, best_freq = max(grid, key=lambda pf: (pf[0].f1, pf[0].precision))
        tuned["mama"] = {"min_degree": best_point.threshold, "min_frequency": best_freq}
        claims["select"]["mama"] = word_fact_claims(select, baselines.mama_facts(cand_select, 0.0, best_freq))
        mama_scored = word_fact_claims(scored, baselines.mama_facts(cand_scored, 0.0, best_freq))
        claims["scored"]["mama"] = mama_scored

    gold_scored, gold_select = scored.gold_keys, select.gold_keys
    best_select = _best(score_claims(claims["select"]["qkgraph"], gold_select, t) for t in SWEEP)
    tuned["qkgraph"] = {"best_f1_threshold_on_selection": best_select.threshold}
    thresholds = {"qkgraph": default_threshold, "spacy": 0.0, "proximity": 0.0}
    if "mama" in tuned:
        thresholds["mama"] = tuned["mama"]["min_degree"]
    rows = {
        name: score_claims(claims["scored"][name], gold_scored, thresholds[name])
        for name in ROWS
        if name in claims["scored"]
    }
    selection = {
        name: score_claims(claims["select"][name], gold_select, thresholds[name])
        for name in ROWS
        if name in claims["select"]
    }
    curves = {"qkgraph": [score_claims(claims["scored"]["qkgraph"], gold_scored, t) for t in SWEEP]}
    if mama_scored is not None:
        curves["mama"] = [score_claims(mama_scored, gold_scored, d) for d in MAMA_DEGREES]
    return FactEvaluation(
        model=models.settings.model,
        default_threshold=default_threshold,
        rows=rows,
        curves=curves,
        tuned=tuned,
        selection=selection,
        reliability=_reliability(claims["scored"]["qkgraph"], gold_scored),
        n_documents=len(scored.documents),
        n_sentences=scored.n_sentences,
        n_gold=len(gold_scored),
        seconds=seconds,
        calibration=calibration,
    )


MIN_KIND_FACTS = 40
"""A fact kind gets its own isotonic calibration map when the selection documents have at least this
many of its facts; a kind with fewer gets its smoothed rate of right facts, (right + 1) / (n + 2)."""


def fit_fact_calibration(claims: Claims, kinds: dict[FactKey, str], gold: set[FactKey]) -> dict[str, Any]:
    """Isotonic maps from a fact's uncalibrated product to the rate of right facts: pooled, and per
    fact kind with at least MIN_KIND_FACTS facts (``by_kind``), as knots with their counts."""

    def fit(keys: list[FactKey]) -> dict[str, Any]:
        xs, ys = isotonic_fit([claims[k] for k in keys], [1.0 if k in gold else 0.0 for k in keys])
        x, y = compress_knots(xs, ys, max_points=32)
        return {"x": x, "y": y, "facts": len(keys), "right": sum(1 for k in keys if k in gold)}

    keys = list(claims)
    out = fit(keys)
    by_kind = {}
    for kind in sorted({kinds[k] for k in keys}):
        of_kind = [k for k in keys if kinds[k] == kind]
        if len(of_kind) >= MIN_KIND_FACTS:
            by_kind[kind] = fit(of_kind)
        else:
            # too few to fit a curve on: the kind's rate of right facts, smoothed (add one each way),
            # whatever the product (the pooled map is mostly actions and would overclaim the kind)
            right = sum(1 for k in of_kind if k in gold)
            rate = round((right + 1) / (len(of_kind) + 2), 5)
            by_kind[kind] = {"x": [0.0, 1.0], "y": [rate, rate], "facts": len(of_kind), "right": right}
    out["by_kind"] = by_kind
    return out


def calibration_knots(calibration: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``fit_fact_calibration``'s result as the knots ``calibrate_facts`` takes."""
    out = {"*": (np.asarray(calibration["x"]), np.asarray(calibration["y"]))}
    for kind, entry in calibration.get("by_kind", {}).items():
        out[kind] = (np.asarray(entry["x"]), np.asarray(entry["y"]))
    return out


def write_plot(result: FactEvaluation, path: Path) -> Path:
    """The precision/recall curves of the rows (qkgraph and mama swept; spacy and proximity points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, curve in result.curves.items():
        pts = [p for p in curve if p.predicted]
        ax.plot([p.recall for p in pts], [p.precision for p in pts], marker=".", label=f"{name} (swept)")
    for name, p in result.rows.items():
        ax.scatter([p.recall], [p.precision], s=60, zorder=3, label=f"{name} at {p.threshold:g}")
    ax.set_xlabel("recall of gold facts")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, max(0.05, max(p.recall for p in result.rows.values()) * 1.1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Facts vs gold UD facts ({result.n_documents} held-out documents, {result.model})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_fact_calibration(model: str, result: FactEvaluation, fitted_on: str) -> Path:
    """Put the fitted map into the model's label artifact (section ``facts``), with its held-out figures."""
    from pipeline.relations.labels import labels_path, write_labels_artifact

    path = labels_path(model)
    data = json.loads(path.read_text("utf-8"))
    assert result.calibration is not None
    q = result.rows["qkgraph"]
    data["facts"] = {
        "calibration": result.calibration,
        "fitted_on": fitted_on,
        "command": "qkgraph eval-facts CONLLU --write-calibration",
        "heldout_at_default": {
            "threshold": q.threshold,
            "precision": round(q.precision, 4),
            "recall": round(q.recall, 4),
        },
        "reliability": result.reliability,
    }
    return write_labels_artifact(data, path)


def main(argv: Sequence[str] | None = None) -> int:
    """``qkgraph eval-facts CONLLU [--select-on FILE] [--json] [--model M] [--plot PNG]``."""
    parser = argparse.ArgumentParser(prog="qkgraph eval-facts", description=__doc__.split("\n")[0])
    parser.add_argument("conllu", type=Path)
    parser.add_argument("--select-on", type=Path, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--max-documents", type=int, default=None, help="use only the first N documents of each part")
    parser.add_argument("--no-baselines", action="store_true", help="leave out the mama and proximity rows")
    parser.add_argument(
        "--write-calibration",
        action="store_true",
        help="fit the fact calibration map on the selection documents and write it into the model's label artifact",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from pipeline.ingest.models import load_models
    from pipeline.ingest.settings import IngestSettings

    for path in (args.conllu, args.select_on):
        if path is not None and not path.is_file():
            print(f"qkgraph eval-facts: error: no such file: {path}", file=sys.stderr)
            return 2
    docs = list(read_conllu_documents(args.conllu))
    if args.select_on is None:
        select_docs, scored_docs = docs[0::2], docs[1::2]
    else:
        select_docs, scored_docs = list(read_conllu_documents(args.select_on)), docs
    if args.max_documents is not None:
        select_docs, scored_docs = select_docs[: args.max_documents], scored_docs[: args.max_documents]
    select, scored = read_part(select_docs), read_part(scored_docs)
    defaults = IngestSettings()
    settings = IngestSettings(model=args.model or defaults.model, fact_threshold=0.0)
    models = load_models(settings)
    baselines = None if args.no_baselines else load_baselines()

    def progress(message: str) -> None:
        print(f"[eval-facts] {message}", file=sys.stderr, flush=True)

    result = evaluate_facts(
        scored, select, models, baselines, defaults.fact_threshold, progress, fit_calibration=args.write_calibration
    )
    print(result.to_markdown())
    fitted_on = f"{args.select_on.name} (whole)" if args.select_on else f"{args.conllu.name}, even-numbered documents"
    if args.write_calibration and result.calibration is not None:
        print(f"fact calibration written: {write_fact_calibration(settings.model, result, fitted_on)}")
    if args.plot is not None:
        print(f"plot: {write_plot(result, args.plot)}")
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "ROWS",
    "FactKey",
    "GoldFactDocument",
    "Point",
    "evaluate_facts",
    "gold_fact_document",
    "main",
    "read_part",
    "score_claims",
    "span_fact_key",
]
