"""The versioned relation-label artifact per model: where it lives, reading it, and writing it.

The artifact ``pipeline/data/labels-<model>.json`` (schema ``LABELS_SCHEMA``) is written by
``qkgraph eval CONLLU --model M --write-labels`` and read here:

* ``load_typed_relations(model)`` -> the model's TypedRelationSet (section ``relations``): per UD
  relation its unit, gate and calibration map, what ingestion and ``identify_relation_types`` use;

* ``load_relation_labels(model)`` -> {"L2H8k24": "amod (0.81)", "qk:det:L1H5k8": "det (0.95)", ...}
  for every subspace whose held-out accuracy reaches the artifact's accuracy floor;
* ``calibrate_score(model, subspace_id, score)`` -> estimated precision of a pair with that score
  (isotonic map fitted on the selection part of the gold data);
* ``load_gate(model, "qk:<relation>:<attachment>")`` -> the ``Gate`` that types a qk unit's pairs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from pipeline.relations.calibration import isotonic_predict
from pipeline.relations.gates import Gate
from pipeline.relations.typed import (
    TypedRelation,
    TypedRelationsMissingError,
    calibration_command,
    typed_relation_from_json,
)

LABELS_SCHEMA = "qkgraph.relation-labels/2"
READABLE_SCHEMAS = ("qkgraph.relation-labels/1", LABELS_SCHEMA)
"""Version 2 adds the ``relations`` section (the typed relation set); version 1 files still give labels."""
ACCURACY_FLOOR = 0.5
"""A subspace of the label artifact gets a label only if its held-out accuracy on its best relation
(Clark's protocol, best direction chosen on the selection part) is at least this."""


def _slug(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-").lower()


def labels_path(model_name: str) -> Path:
    """Where the artifact of ``model_name`` lives in the package (pipeline/data/labels-<model>.json)."""
    return Path(str(resources.files("pipeline").joinpath(f"data/labels-{_slug(model_name)}.json")))


@lru_cache(maxsize=16)
def _digest(path: str, mtime_ns: int) -> str:
    # mtime is part of the cache key only: a rewritten artifact is hashed again
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def typed_set_digest(model_name: str) -> str:
    """sha256 of the model's label artifact (its typed relation set), "" when it has none: a rebuilt
    set changes what typed analyses mean."""
    path = labels_path(model_name)
    return _digest(str(path), path.stat().st_mtime_ns) if path.is_file() else ""


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict:
    # mtime is part of the cache key only: a rewritten artifact is read again
    data = json.loads(Path(path).read_text("utf-8"))
    if data.get("schema") not in READABLE_SCHEMAS:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, expected one of {READABLE_SCHEMAS}")
    return data


def load_labels_artifact(model_name: str, path: str | Path | None = None) -> dict:
    """The parsed artifact of ``model_name`` (``path``: another file); FileNotFoundError when absent."""
    p = Path(path) if path is not None else labels_path(model_name)
    if not p.is_file():
        raise FileNotFoundError(
            f"no relation labels for model {model_name!r} at {p}; generate them with "
            f"`{calibration_command(model_name)}`"
        )
    return _load(str(p), p.stat().st_mtime)


@dataclass(frozen=True)
class TypedRelationSet:
    """The typed relations of one model, read from its label artifact.

    Attributes:
        model: the model name; path: the artifact; gate_kind: the gate the set uses (chosen by the
        rule in docs/evaluation.md); threshold: the calibrated threshold the held-out figures are
        quoted at; relations: relation name -> TypedRelation (in the artifact's order);
        comparison: the held-out table of the gate kinds the choice was made from (may be empty);
        fact_knots: the fact calibration maps (product of a fact's arc probabilities -> probability
        that the fact is right), by fact kind with ``"*"`` for all kinds pooled; section ``facts``,
        written by ``qkgraph eval-facts --write-calibration``; or None.
    """

    model: str
    path: str
    gate_kind: str
    threshold: float
    relations: dict[str, TypedRelation]
    comparison: dict = field(default_factory=dict)
    fact_knots: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def ranked(self, layer: int | None = None) -> list[TypedRelation]:
        """The relations (of ``layer``, or all) by held-out labelled F1 at the threshold, best first."""
        rels = [t for t in self.relations.values() if layer is None or t.layer == layer]
        return sorted(rels, key=lambda t: (-(t.heldout.get("f1") or 0.0), t.relation))

    @property
    def layers(self) -> list[int]:
        return sorted({t.layer for t in self.relations.values()})


def load_typed_relations(model_name: str, path: str | Path | None = None) -> TypedRelationSet:
    """The typed relation set of ``model_name`` (``path``: another artifact).

    Raises TypedRelationsMissingError, naming the command that builds the set, when the model has no
    artifact or its artifact has no ``relations`` section."""
    try:
        data = load_labels_artifact(model_name, path)
    except FileNotFoundError as exc:
        raise TypedRelationsMissingError(
            f"model {model_name!r} has no typed relation set; build one with `{calibration_command(model_name)}`"
        ) from exc
    section = data.get("relations")
    if not section:
        where = path if path is not None else labels_path(model_name)
        raise TypedRelationsMissingError(
            f"the label artifact of {model_name!r} ({where}) has no typed relations (schema "
            f"{data.get('schema')!r}); rebuild it with `{calibration_command(model_name)}`"
        )
    rels = {rel: typed_relation_from_json(rel, entry) for rel, entry in section.items()}
    return TypedRelationSet(
        model=data.get("model", model_name),
        path=str(path if path is not None else labels_path(model_name)),
        gate_kind=str(data.get("gate_kind", "")),
        threshold=float(data.get("default_threshold", 0.7)),
        relations=rels,
        comparison=dict(data.get("gate_comparison", {})),
        fact_knots=_fact_knots(data),
    )


def _fact_knots(data: dict) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    cal = (data.get("facts") or {}).get("calibration")
    if not cal:
        return None

    def knots(entry: dict) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(entry["x"], dtype=np.float64), np.asarray(entry["y"], dtype=np.float64)

    out = {"*": knots(cal)}
    for kind, entry in (cal.get("by_kind") or {}).items():
        out[str(kind)] = knots(entry)
    return out


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
