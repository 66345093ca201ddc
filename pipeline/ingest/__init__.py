"""The main job as plain functions: settings, models, analysis, and ``run_ingest`` over any sinks.

Names load lazily, so ``pipeline.ingest.settings`` (what the CLI needs for its options) does not pull
in torch or spaCy.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "MAX_DOCUMENT_CHARS": "models",
    "Models": "models",
    "analyse_isolated": "models",
    "analyze_documents": "models",
    "load_models": "models",
    "relation_labels_for": "models",
    "FailedDocument": "report",
    "IngestReport": "report",
    "Analyser": "run",
    "LocalAnalyser": "run",
    "run_ingest": "run",
    "DEFAULT_OUT": "settings",
    "DEFAULT_THRESHOLD": "settings",
    "DEFAULT_TOP_K": "settings",
    "IngestSettings": "settings",
    "parse_layers": "settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.ingest' has no attribute {name!r}")
    return getattr(import_module(f"pipeline.ingest.{module}"), name)
