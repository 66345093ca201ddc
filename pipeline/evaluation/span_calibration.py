"""Span calibration: what a typed edge occurrence between two spans is worth, measured through ingestion.

The typed relations' maps (``qkgraph eval``) say how often a *word pair* with a given gate x share is a
gold arc. The graph shows something narrower: pairs whose two words lie in two different spans (an
entity, a noun chunk, a pronoun, a content word). That subset is harder for the relations that mostly
live inside one noun phrase (amod, compound, det: between spans they appear where spaCy split a
phrase), so the word-level probability overstates them there. This module runs the product itself on
the *selection* part of the gold data (``qkgraph ingest``'s functions: spaCy spans, the typed
extractor, the KnowledgeGraph, at the candidate floor and without span maps), scores every edge
occurrence against the gold trees (``graph_score``) and fits, per relation, an isotonic map from the
word-pair probability to the probability that the occurrence is right. The maps go into the model's
typed relation set (``span_calibration`` of each relation), and ingestion applies them before the
threshold, as an upper bound only (``TypedRelation.span_probability``: a map fitted on one half may
lower a claim, never raise it). A relation with fewer than ``MIN_OCCURRENCES`` selection occurrences
gets no map: its word-level probability stands.

    python -m pipeline.evaluation.span_calibration ../shared/data/ud_english_ewt/en_ewt-ud-dev.conllu \
        [--model smollm2] [--labels FILE] [--max-sentences N]

Run it after ``qkgraph eval ... --write-labels`` (which rewrites the set and drops old maps).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.evaluation.graph_score import score_graph, split_conllu
from pipeline.relations.calibration import compress_knots, isotonic_fit, isotonic_predict

MIN_OCCURRENCES = 10
"""Selection-part occurrences (at the candidate floor) a relation needs for a span map."""


def span_outcomes(
    conllu_path: str | Path, model: str, labels: str | Path | None = None, max_sentences: int | None = None
) -> tuple[list[tuple[str | None, float, bool]], dict[str, Any]]:
    """(relation, word-pair probability, labelled-correct) of every typed edge occurrence that the
    ingest path produces on the selection part of ``conllu_path``, and what was run."""
    from pipeline.graph import KnowledgeGraph
    from pipeline.ingest import IngestSettings, load_models
    from pipeline.ingest.models import analyze_documents
    from pipeline.relations.extract import SPAN_CANDIDATE_FLOOR
    from pipeline.relations.labels import load_typed_relations
    from pipeline.text.sources import iter_documents
    from pipeline.types import Document

    with tempfile.TemporaryDirectory() as tmp:
        part = split_conllu(conllu_path, "select", Path(tmp) / "select.conllu", max_sentences)
        models = load_models(IngestSettings(model=model, threshold=SPAN_CANDIDATE_FLOOR))
        if models.settings.relation_types != "typed":
            raise ValueError(f"model {model!r} has no typed relation set to calibrate")
        typed = load_typed_relations(model, labels)
        # raw word-pair probabilities: no span map in the way
        models.subspaces = [replace(t, span_knots=None) for t in typed.relations.values()]
        models.extractor.use_typed_relations(typed)
        docs = [d for d in iter_documents([str(part.path)]) if isinstance(d, Document)]
        kg = KnowledgeGraph()
        for analysis in analyze_documents(docs, models):
            kg.add_analysis(analysis)
        score = score_graph(kg, part.path)
    info = {
        "documents": len(part.documents) if isinstance(part.documents, (list, tuple)) else part.documents,
        "sentences": part.n_sentences,
        "occurrences": len(score.outcomes),
        "candidate_floor": SPAN_CANDIDATE_FLOOR,
    }
    return score.outcomes, info


def fit_span_maps(
    outcomes: list[tuple[str | None, float, bool]], threshold: float, min_occurrences: int = MIN_OCCURRENCES
) -> dict[str, dict[str, Any]]:
    """Per relation with enough occurrences: the isotonic map and its selection-part figures."""
    by_rel: dict[str, list[tuple[float, bool]]] = {}
    for rel, score, ok in outcomes:
        if rel is not None:
            by_rel.setdefault(rel, []).append((score, ok))
    out = {}
    for rel, rows in sorted(by_rel.items()):
        x = np.array([s for s, _ in rows])
        y = np.array([float(ok) for _, ok in rows])
        before = x >= threshold
        entry: dict[str, Any] = {
            "occurrences": len(rows),
            "word_level_at_threshold": {
                "occurrences": int(before.sum()),
                "precision": round(float(y[before].mean()), 4) if before.any() else None,
            },
        }
        if len(rows) >= min_occurrences:
            knots = isotonic_fit(x, y)
            after = np.minimum(isotonic_predict(knots, x), x) >= threshold  # as span_probability applies it
            xs, ys = compress_knots(*knots)
            entry.update(
                x=xs,
                y=ys,
                span_level_at_threshold={
                    "occurrences": int(after.sum()),
                    "precision": round(float(y[after].mean()), 4) if after.any() else None,
                },
            )
        out[rel] = entry
    return out


def write_span_calibration(
    conllu_path: str | Path, model: str, labels: str | Path | None = None, max_sentences: int | None = None
) -> dict[str, Any]:
    """Fit the span maps of ``model`` and write them into its label artifact (or ``labels``)."""
    from pipeline.relations.labels import labels_path, load_labels_artifact, write_labels_artifact

    path = Path(labels) if labels is not None else labels_path(model)
    data = copy.deepcopy(load_labels_artifact(model, path))  # the loaded artifact is cached: edit a copy
    outcomes, info = span_outcomes(conllu_path, model, path, max_sentences)
    threshold = float(data.get("default_threshold", 0.7))
    maps = fit_span_maps(outcomes, threshold)
    for rel, entry in data["relations"].items():
        entry.pop("span_calibration", None)
        fitted = maps.get(rel)
        if fitted is not None and "x" in fitted:
            entry["span_calibration"] = {
                "x": fitted["x"],
                "y": fitted["y"],
                "occurrences": fitted["occurrences"],
                "select_at_threshold": fitted["span_level_at_threshold"],
                "word_level_select_at_threshold": fitted["word_level_at_threshold"],
            }
    args = f" --max-sentences {max_sentences}" if max_sentences else ""
    data["span_calibration"] = {
        **info,
        "min_occurrences": MIN_OCCURRENCES,
        "data_source": str(conllu_path),
        "part": "selection (even-numbered documents)",
        "target": "the edge occurrence joins two spans with a gold arc of its relation (graph_score)",
        "date": date.today().isoformat(),
        "generated_by": f"python -m pipeline.evaluation.span_calibration {conllu_path} --model {model}{args}",
        "relations": {r: {k: v for k, v in e.items() if k not in ("x", "y")} for r, e in maps.items()},
    }
    write_labels_artifact(data, path)
    return data["span_calibration"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.evaluation.span_calibration", description=__doc__)
    p.add_argument("conllu", help="gold CoNLL-U (its selection part is used)")
    p.add_argument("--model", default=None, help="model name (default: the packaged default)")
    p.add_argument("--labels", default=None, help="the label artifact to update (default: the packaged one)")
    p.add_argument("--max-sentences", type=int, default=None)
    a = p.parse_args(argv)
    from pipeline.model.defaults import DEFAULT_MODEL

    info = write_span_calibration(a.conllu, a.model or DEFAULT_MODEL, a.labels, a.max_sentences)
    for rel, e in info["relations"].items():
        before, after = e["word_level_at_threshold"], e.get("span_level_at_threshold")
        print(
            f"{rel:12s} n={e['occurrences']:5d}  word-level >=t: {before['occurrences']:4d} P={before['precision']}"
            + (f"  span map >=t: {after['occurrences']:4d} P={after['precision']}" if after else "  (no map)"),
            file=sys.stderr,
        )
    print(json.dumps({k: v for k, v in info.items() if k != "relations"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
