"""Relation fidelity: QK units scored against gold dependency arcs (``qkgraph eval``)."""

from __future__ import annotations

from pipeline.evaluation.calibration import calibrate_score, load_gate, load_relation_labels
from pipeline.evaluation.run import main, run_evaluation

__all__ = ["calibrate_score", "load_gate", "load_relation_labels", "main", "run_evaluation"]
