"""How well do a model's QK circuits recover gold dependency relations? (Clark et al. 2019's protocol)

``run_evaluation(conllu_path, model)`` scores several kinds of *units* (see pipeline.evaluation.units) on UD
gold trees, each unit chosen per relation on one part of the data and scored on the other:

    offset     a fixed relative position (-3..+3)
    attention  a raw attention head (the model's own probabilities, pooled to words)
    logit      a head's full logits, pooled to words by the mean (argmax of the logit)
    component  one rank-1 component of a head's QK circuit (pooled logit)
    rank_k     a head's top-k truncation, k in {4, 8, 16, (32,) energy-rule k}; attention share
    assembled  rank-1 components of several heads of one layer, summed (greedy forward selection
               on the selection part); attention share
    qk         the graph's typed relation: the best subspace attachment (attention/rank_k/assembled,
               chosen on the selection part) plus a logistic gate of the set's gate kind; a held-out
               arc counts only when the gate fires (p >= 0.5) AND the argmax is the gold partner

Four gate kinds are fitted on every attachment (``subspace``: the two words' coordinates on the
unit's own subspace; ``residual``: both words' residuals; ``query``: the query word's residual;
``none``: no gate) and compared; the set uses ``subspace`` unless ``residual`` is better by more than
3 points of labelled F1 at 0.7 on the selection part (pipeline.evaluation.qk.RULE). The pair score,
gate x share, is mapped to an estimated precision by an isotonic fit on out-of-fold gate scores of the
selection part (pipeline.relations.calibration), so threshold 0.7 means ~70% of returned pairs are gold
arcs of the relation. Every held-out figure of the typed relations comes from the library's
``score_words`` run over the corpus (what ingestion runs), over a threshold sweep.

Command line (``--json``: the LAST line printed is one JSON object):

    python -m pipeline.evaluation CONLLU [--model M] [--json] [--plots DIR] [--select-on FILE]
                                  [--max-sentences N] [--write-labels] [--seed S]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipeline.evaluation.cache import ResidualCache
from pipeline.evaluation.corpus import (
    ALL,
    REL_ALL,
    RELATIONS,
    SELECT,
    Corpus,
    build_corpus,
    directions,
    gold_arc_sets,
)
from pipeline.evaluation.labelling import LabelEntries, label_entries
from pipeline.evaluation.passes import (
    Assembly,
    UnitSet,
    log_progress,
    pass_assemble,
    pass_broad,
    pass_specific,
    pass_typed,
    pass_word_features,
)
from pipeline.evaluation.plots import write_plots
from pipeline.evaluation.qk import (
    TypedEvaluation,
    WordArrays,
    attachment_pick,
    evaluate_typed,
    fit_typed_relations,
    held_out_gold_pairs,
)
from pipeline.evaluation.report import METHODS, EvaluationReport
from pipeline.evaluation.scoring import Pick, accuracy_table, select_best, selection_entry
from pipeline.evaluation.units import OFFSETS, Unit, assembled_id, offset_predictions
from pipeline.relations.calibration import DEFAULT_THRESHOLD
from pipeline.relations.gates import GATE_ON
from pipeline.relations.labels import ACCURACY_FLOOR, LABELS_SCHEMA, labels_path, write_labels_artifact
from pipeline.relations.typed import GATE_KINDS, typed_relation_to_json

if TYPE_CHECKING:
    from pipeline.model.adapters import LoadedModel
    from pipeline.model.extractor import KnowledgeGraphExtractor

COMPONENT_LIMIT = 4096  # rank-1 components swept by default (all-MiniLM: 2,304; SmolLM2: 17,280)
BROAD_METHODS = ("offset", "attention", "logit", "component", "rank_k")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how (the arguments of ``run_evaluation``)."""

    conllu_path: str | Path
    model: str = "all-minilm-l6-v2"
    select_on: str | Path | None = None
    max_sentences: int | None = None
    plots_dir: str | Path | None = None
    seed: int = 0
    write_labels: bool = False
    labels_out: str | Path | None = None
    components: bool | None = None
    quiet: bool = True


@dataclass
class _Run:
    """One evaluation under way: the loaded model, its gold corpus and what the steps found so far.

    ``units``/``acc``: method -> its UnitSet and accuracy [N, n_dirs, 2, len(REL_ALL)];
    ``selected``: relation -> method -> the report's entry; ``picks``: the same choices as indices.
    """

    config: EvalConfig
    lm: LoadedModel
    ex: KnowledgeGraphExtractor
    corpus: Corpus
    causal: bool
    components: bool
    cache: ResidualCache
    t_start: float
    units: dict[str, UnitSet] = field(default_factory=dict)
    acc: dict[str, torch.Tensor] = field(default_factory=dict)
    feats: dict[int, torch.Tensor] = field(default_factory=dict)
    selected: dict[str, dict[str, dict]] = field(default_factory=dict)
    picks: dict[str, dict[str, Pick]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dirs(self) -> tuple[str, ...]:
        return directions(self.causal)

    def pick(self, rel: str, method: str, ui: int, di: int) -> None:
        """Record unit ``ui`` of ``method`` in direction ``di`` as chosen for ``rel``."""
        r = REL_ALL.index(rel)
        entry = selection_entry(self.units[method].units[ui], self.acc[method], ui, di, self.dirs, r)
        self.selected[rel][method] = entry
        self.picks[rel][method] = Pick(method, ui, di, entry["select"])


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
    config = EvalConfig(
        conllu_path,
        model,
        select_on,
        max_sentences,
        plots_dir,
        seed,
        write_labels=write_labels,
        labels_out=labels_out,
        components=components,
        quiet=quiet,
    )
    return evaluate(config, loaded)


def evaluate(config: EvalConfig, loaded: LoadedModel | None = None) -> EvaluationReport:
    """``run_evaluation`` with its arguments in an ``EvalConfig``."""
    # model code is imported here, not at module level: importing the package for its label
    # readers (the graph does) must stay cheap
    from pipeline.model.adapters import load_model
    from pipeline.model.extractor import KnowledgeGraphExtractor

    t_start = time.time()
    torch.manual_seed(config.seed)
    lm = loaded if loaded is not None else load_model(config.model)
    ex = KnowledgeGraphExtractor(lm.model, lm.tokenizer)
    ad = ex.adapter
    causal = bool(ad.causal)
    components = config.components
    if components is None:
        components = ad.n_layers * ad.n_heads * ad.d_head <= COMPONENT_LIMIT
    corpus = build_corpus(
        config.conllu_path, lm.tokenizer, causal, select_on=config.select_on, max_sentences=config.max_sentences
    )
    if max(s.n_words for s in corpus.sentences) > 127:
        raise ValueError("sentences longer than 127 words are not supported by the int8 prediction store")
    log_progress(
        f"{lm.name}: {len(corpus.sentences)} sentences, {corpus.n_words} words, {len(corpus.arc_rel)} arcs",
        config.quiet,
    )
    cache = ResidualCache()
    try:
        run = _Run(config, lm, ex, corpus, causal, components, cache, t_start)
        run.selected = {rel: {} for rel in REL_ALL}
        run.picks = {rel: {} for rel in REL_ALL}
        with torch.no_grad():
            _broad_step(run)
            _assembled_step(run)
            gold_lab, gold_unl = gold_arc_sets(corpus)
            held_unl = held_out_gold_pairs(corpus, gold_unl)
            typed = _typed_step(run, gold_lab, held_unl)
            for rel in typed.fit.relations:
                run.selected[rel]["qk"] = typed.selected_entry(rel)
            labels = _labels_step(run, typed, gold_lab, held_unl)
        return _report(run, typed, labels)
    finally:
        cache.close()


def _broad_step(run: _Run) -> None:
    """Pass A, the offsets, every broad unit's accuracy, and the broad unit chosen per relation."""
    corpus, causal = run.corpus, run.causal
    t = time.time()
    broad, run.feats = pass_broad(run.ex, corpus, causal, run.components, run.config.quiet, run.cache)
    run.timings["broad_pass_s"] = round(time.time() - t, 1)
    off_units = [Unit("offset", f"{o:+d}", offset=o) for o in OFFSETS]
    broad["offset"] = UnitSet(
        off_units,
        torch.from_numpy(np.stack([offset_predictions(corpus, o, causal) for o in OFFSETS])).to(torch.int8),
    )
    run.units = broad
    run.acc = {m: accuracy_table(corpus, us.preds, causal) for m, us in broad.items()}
    for m in BROAD_METHODS:
        if m not in broad:
            continue
        for r, rel in enumerate(REL_ALL):
            ui, di = select_best(run.acc[m], run.dirs, r)
            run.pick(rel, m, ui, di)


def _assembled_units(plan: dict[str, Assembly]) -> list[Unit]:
    """One ``assembled`` unit per distinct assembly, in the order of the relations."""
    units: list[Unit] = []
    for a in plan.values():
        uid = assembled_id(a.layer, a.components)
        if uid not in {u.id for u in units}:
            units.append(Unit("assembled", uid, a.layer, components=tuple(a.components)))
    return units


def _assembled_step(run: _Run) -> None:
    """Passes B and C: assemble a unit per relation, score the assembled units, choose per relation."""
    corpus, causal, quiet = run.corpus, run.causal, run.config.quiet
    t = time.time()
    plan = pass_assemble(
        run.ex,
        corpus,
        causal,
        run.units.get("component"),
        run.acc.get("component"),
        run.units["logit"],
        run.acc["logit"],
        quiet,
        run.config.seed,
        run.cache,
    )
    run.timings["assembly_pass_s"] = round(time.time() - t, 1)
    assembled_units = _assembled_units(plan)
    t = time.time()
    asm = pass_specific(run.ex, corpus, causal, assembled_units, quiet, run.cache)
    run.timings["specific_pass_s"] = round(time.time() - t, 1)
    if not assembled_units:
        return
    run.units["assembled"] = asm
    run.acc["assembled"] = accuracy_table(corpus, asm.preds, causal)
    ids = [u.id for u in assembled_units]
    for r, rel in enumerate(REL_ALL):
        ui = ids.index(assembled_id(plan[rel].layer, plan[rel].components))
        # direction: the better one on the selection part for this unit
        di = int(torch.argmax(run.acc["assembled"][ui, :, SELECT, r]))
        run.pick(rel, "assembled", ui, di)


def _typed_step(run: _Run, gold_lab: set, held_unl: set[tuple[int, int]]) -> TypedEvaluation:
    """Fit the four gate kinds of every relation, score them all with the library's ``score_words``
    over the corpus, and choose the set's gate kind (timed)."""
    corpus, quiet = run.corpus, run.config.quiet
    # the subspace gate reads word residuals at each attachment's layer: add the layers pass A did not keep
    gate_layers = sorted(run.feats)
    layers = {run.units[p.method].units[p.unit].at_layer for p in (attachment_pick(run.picks[r]) for r in RELATIONS)}
    missing = sorted(layers - set(run.feats))
    t = time.time()
    feats = {**run.feats, **pass_word_features(run.ex, corpus, run.causal, missing, quiet, run.cache)}
    fit = fit_typed_relations(
        run.ex,
        corpus,
        run.units,
        run.acc,
        run.picks,
        feats,
        gate_layers,
        run.dirs,
        gold_lab,
        by_document=run.config.select_on is None,
    )
    del feats
    run.timings["typed_fit_s"] = round(time.time() - t, 1)
    log_progress(f"typed relations: four gate kinds fitted, {time.time() - t:.0f} s", quiet)
    t = time.time()
    raw = pass_typed(run.ex, corpus, run.causal, {k: fit.typed(k) for k in GATE_KINDS}, quiet, run.cache)
    scores = {k: {rel: WordArrays.of(v) for rel, v in group.items()} for k, group in raw.items()}
    typed = evaluate_typed(corpus, fit, scores, gold_lab, held_unl)
    run.timings["typed_pass_s"] = round(time.time() - t, 1)
    c = typed.choice
    log_progress(
        f"gate kind: {typed.chosen} (residual - subspace macro F1: selection {c['residual_minus_subspace']['select']:+.4f}, "
        f"held out {c['residual_minus_subspace']['heldout']:+.4f})",
        quiet,
    )
    return typed


def _labels_step(run: _Run, typed: TypedEvaluation, gold_lab: set, held_unl: set[tuple[int, int]]) -> LabelEntries:
    """The label artifact's entries (top subspaces per layer and the qk types), timed."""
    t = time.time()
    labels = label_entries(
        run.ex,
        run.corpus,
        run.units["rank_k"],
        run.acc["rank_k"],
        run.units["attention"],
        run.picks[ALL]["attention"].unit,
        run.dirs,
        gold_lab,
        held_unl,
        typed,
    )
    run.timings["labels_s"] = round(time.time() - t, 1)
    return labels


def _artifact(run: _Run, typed: TypedEvaluation, labels: LabelEntries) -> dict:
    """The label artifact (schema LABELS_SCHEMA) of this run."""
    cfg, lm, ad = run.config, run.lm, run.ex.adapter
    swept_beyond_default = "component" in run.units and ad.n_layers * ad.n_heads * ad.d_head > COMPONENT_LIMIT
    return {
        "schema": LABELS_SCHEMA,
        "model": lm.name,
        "model_layout": ad.describe(),
        "data_source": run.corpus.source,
        "split": run.corpus.split_rule,
        "date": _dt.date.today().isoformat(),
        "generated_by": f"python -m pipeline.evaluation {cfg.conllu_path} --model {lm.name} --write-labels"
        + (f" --select-on {cfg.select_on}" if cfg.select_on else "")
        + (f" --max-sentences {cfg.max_sentences}" if cfg.max_sentences else "")
        + (" --components" if swept_beyond_default else ""),
        "accuracy_floor": ACCURACY_FLOOR,
        "protocol": "Clark et al. 2019 word-level argmax; accuracy is held-out; calibration is isotonic (PAV) "
        "fitted on the selection part, for typed relations on out-of-fold gate scores (2 folds of selection "
        "documents); held-out figures of typed relations from pipeline.relations.typed.score_words",
        "default_threshold": DEFAULT_THRESHOLD,
        "gate_threshold": GATE_ON,
        "subspaces": labels.entries,
        "gate_kind": typed.chosen,
        "gate_choice": typed.choice,
        "gate_comparison": typed.comparison(),
        "relations": {
            rel: typed_relation_to_json(t, {"select": typed.fit.relations[rel].kinds[typed.chosen].select})
            for rel, t in typed.typed[typed.chosen].items()
        },
    }


def _report(run: _Run, typed: TypedEvaluation, labels: LabelEntries) -> EvaluationReport:
    """Assemble the report; write the label artifact and the plots when asked."""
    corpus, cfg = run.corpus, run.config
    sweep, calib = typed.sweep_and_calibration()
    accuracy: dict[str, dict[str, float | None]] = {rel: {} for rel in REL_ALL}
    for rel in REL_ALL:
        for m in METHODS:
            e = run.selected[rel].get(m)
            accuracy[rel][m] = None if e is None else e["heldout"]
    entries = labels.entries
    n_labelled = sum(1 for e in entries.values() if e["label"])
    diagnostics = {
        "timings": run.timings,
        "n_sentences": len(corpus.sentences),
        "n_words": corpus.n_words,
        "skipped_arcs": int(sum(s.n_skipped for s in corpus.sentences)),
        "unaligned_words": int((~corpus.word_valid).sum()),
        "raw_unlabelled": labels.raw_unlabelled,
        "best_head_unlabelled": labels.best_head_unlabelled,
        "gate_threshold": GATE_ON,
        "prefix_token": corpus.sentences[0].ids[0] if run.causal else None,
    }
    report = EvaluationReport(
        model=run.lm.name,
        source=corpus.source,
        split=corpus.split_rule,
        causal=run.causal,
        counts=corpus.counts(),
        accuracy=accuracy,
        selected=run.selected,
        calibration=calib,
        sweep=sweep,
        labels={"n_labelled": n_labelled, "n_entries": len(entries), "path": None},
        diagnostics=diagnostics,
        runtime_s=0.0,
        gate_comparison=typed.report_section(),
        typed=typed,
    )
    if cfg.write_labels:
        out = cfg.labels_out if cfg.labels_out is not None else labels_path(run.lm.name)
        report.labels["path"] = str(write_labels_artifact(_artifact(run, typed, labels), out))
    if cfg.plots_dir is not None:
        ad = run.ex.adapter
        report.plots = write_plots(
            Path(cfg.plots_dir), run.lm.name, run.acc["attention"], ad.n_layers, ad.n_heads, sweep, run.causal
        )
    report.runtime_s = time.time() - run.t_start
    report.diagnostics["timings"]["total_s"] = round(report.runtime_s, 1)
    return report


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """The command line: tables on stdout (``--json``: then one line of JSON). Returns the exit status."""
    cli(argv)
    return 0


def cli(argv: list[str] | None = None) -> EvaluationReport:
    """``main`` returning the report it printed (the TypedRelation objects and per-word scores included)."""
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
    return report


if __name__ == "__main__":
    sys.exit(main())
