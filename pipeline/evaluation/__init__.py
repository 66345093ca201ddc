"""Relation fidelity: QK units scored against gold dependency arcs (``qkgraph eval``).

Modules by job: ``corpus`` (gold words, arcs, split), ``batching`` (length-sorted batches of the
library's WordBatch), ``units`` (unit names; logits from ``pipeline.model.units``), ``cache``
(residuals on disk), ``passes`` (the passes over the corpus, the library ``score_words`` pass
included), ``scoring`` (accuracy, choice, precision/recall), ``qk`` (the typed relations: four gate
kinds, out-of-fold calibration, the gate kind of the set), ``labelling`` (the label artifact's
entries), ``report``, ``plots``, and ``run`` (``run_evaluation`` and the command line). Gates,
calibration maps, typed relations and the artifact's reader live in ``pipeline.relations``.
"""

from __future__ import annotations

from pipeline.evaluation.run import main, run_evaluation
from pipeline.relations.labels import calibrate_score, load_gate, load_relation_labels

__all__ = ["calibrate_score", "load_gate", "load_relation_labels", "main", "run_evaluation"]
