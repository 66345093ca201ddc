"""The versioned relation-label artifact per model: where it lives, reading it, and writing it.

The artifact ``pipeline/data/labels-<model>.json`` (schema ``LABELS_SCHEMA``) is written by
``python -m pipeline.evaluation CONLLU --model M --write-labels`` and read here:

* ``load_relation_labels(model)`` -> {"L2H8k24": "amod (0.81)", "qk:det:L1H5k8": "det (0.95)", ...}
  for every subspace whose held-out accuracy reaches the artifact's accuracy floor;
* ``calibrate_score(model, subspace_id, score)`` -> estimated precision of a pair with that score
  (isotonic map fitted on the selection part of the gold data);
* ``load_gate(model, "qk:<relation>:<attachment>")`` -> the ``Gate`` that types a qk unit's pairs.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pipeline.evaluation.calibration import isotonic_predict
from pipeline.evaluation.gates import Gate

LABELS_SCHEMA = "qkgraph.relation-labels/1"
ACCURACY_FLOOR = 0.5
"""A subspace of the label artifact gets a label only if its held-out accuracy on its best relation
(Clark's protocol, best direction chosen on the selection part) is at least this."""


def _slug(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-").lower()


def labels_path(model_name: str) -> Path:
    """Where the artifact of ``model_name`` lives in the package (pipeline/data/labels-<model>.json)."""
    return Path(str(resources.files("pipeline").joinpath(f"data/labels-{_slug(model_name)}.json")))


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict:
    # mtime is part of the cache key only: a rewritten artifact is read again
    data = json.loads(Path(path).read_text("utf-8"))
    if data.get("schema") != LABELS_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, expected {LABELS_SCHEMA!r}")
    return data


def load_labels_artifact(model_name: str, path: str | Path | None = None) -> dict:
    """The parsed artifact of ``model_name`` (``path``: another file); FileNotFoundError when absent."""
    p = Path(path) if path is not None else labels_path(model_name)
    if not p.is_file():
        raise FileNotFoundError(
            f"no relation labels for model {model_name!r} at {p}; generate them with "
            f"`python -m pipeline.evaluation <gold.conllu> --model {model_name} --write-labels`"
        )
    return _load(str(p), p.stat().st_mtime)


def load_relation_labels(model_name: str, path: str | Path | None = None) -> dict[str, str]:
    """Subspace id -> "relation (held-out accuracy)" for the labelled subspaces and qk units, e.g.
    {"L2H8k24": "amod (0.81)"}. Subspaces below the artifact's accuracy floor are left out."""
    data = load_labels_artifact(model_name, path)
    out = {}
    for sid, entry in data["subspaces"].items():
        if entry.get("label"):
            out[sid] = f"{entry['label']} ({entry['accuracy']:.2f})"
    return out


def calibrate_score(model_name: str, subspace_id: str, score: float, path: str | Path | None = None) -> float:
    """Estimated precision (probability that the pair is a gold arc of the subspace's relation, in
    its direction) of a pair score. For a subspace the score is its attention share; for a ``qk:``
    unit it is gate(query) x share. Unknown ids raise KeyError."""
    data = load_labels_artifact(model_name, path)
    try:
        cal = data["subspaces"][subspace_id]["calibration"]
    except KeyError:
        raise KeyError(f"subspace {subspace_id!r} has no calibration in the labels of {model_name!r}") from None
    return float(isotonic_predict((cal["x"], cal["y"]), float(score)))


def load_gate(model_name: str, unit_id: str, path: str | Path | None = None) -> Gate:
    """The logistic gate of a ``qk:`` unit (p = gate.prob(features); see Gate for the features)."""
    data = load_labels_artifact(model_name, path)
    try:
        return Gate.from_json(data["subspaces"][unit_id]["gate"])
    except KeyError:
        raise KeyError(f"{unit_id!r} is not a gated qk unit in the labels of {model_name!r}") from None


def artifact_json(obj: dict) -> str:
    """Indented JSON with every list of numbers kept on one line (readable diffs, small files)."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    return (
        re.sub(
            r"\[\s*([-0-9.eE, \n]+?)\s*\]",
            lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
            text,
        )
        + "\n"
    )


def write_labels_artifact(artifact: dict, path: str | Path) -> Path:
    """Write ``artifact`` (schema ``LABELS_SCHEMA``) to ``path``, creating its folder. Returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(artifact_json(artifact), "utf-8")
    return out
