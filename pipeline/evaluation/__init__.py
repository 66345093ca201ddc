"""Relation fidelity: QK units scored against gold dependency arcs (``qkgraph eval``).

Modules by job: ``corpus`` (gold words, arcs, split), ``batching`` (batches, word pooling),
``units`` (unit names and logits), ``cache`` (residuals on disk), ``passes`` (the passes over the
corpus), ``scoring`` (accuracy, choice, precision/recall), ``gates`` (logistic gates),
``calibration`` (isotonic maps), ``qk`` (the graph's gated relation types), ``labelling`` and
``labels`` (the label artifact's entries; reading and writing it), ``report``, ``plots``, and
``run`` (``run_evaluation`` and the command line).
"""

from __future__ import annotations

from pipeline.evaluation.run import main, run_evaluation
from pipeline.relations.labels import calibrate_score, load_gate, load_relation_labels

__all__ = ["calibrate_score", "load_gate", "load_relation_labels", "main", "run_evaluation"]
