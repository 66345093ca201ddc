"""The database schema (constraints, indexes) and the whitelists every label and type passes first.

Labels and relation types that end up in the database as labels or ``type`` properties must pass
``check_entity_label`` / ``check_relation_type``; anything else raises ValueError naming the value,
before anything is written.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

import neo4j

from pipeline.store import queries

__all__ = [
    "ALL_ENTITY_NODE_LABELS",
    "ENTITY_LABELS",
    "RELATION_TYPE_RE",
    "SPAN_KINDS",
    "check_entity_label",
    "check_relation_labels",
    "check_relation_type",
    "check_span",
    "ensure_schema",
    "ensure_schema_once",
    "entity_node_labels",
]

#: spaCy (OntoNotes) entity label -> the extra Neo4j label an entity span gets. The only labels,
#: besides the fixed Document/Sentence/Span/RelationType, that ever reach the database.
ENTITY_LABELS: dict[str, str] = {
    "PERSON": "Person",
    "NORP": "Norp",
    "FAC": "Facility",
    "ORG": "Org",
    "GPE": "Gpe",
    "LOC": "Location",
    "PRODUCT": "Product",
    "EVENT": "Event",
    "WORK_OF_ART": "WorkOfArt",
    "LAW": "Law",
    "LANGUAGE": "Language",
    "DATE": "Date",
    "TIME": "Time",
    "PERCENT": "Percent",
    "MONEY": "Money",
    "QUANTITY": "Quantity",
    "ORDINAL": "Ordinal",
    "CARDINAL": "Cardinal",
}
#: Every extra entity label, sorted (removed from a span before its current one is set).
ALL_ENTITY_NODE_LABELS: list[str] = sorted(ENTITY_LABELS.values())

#: Relation type ids as pipeline.model.extractor writes them: L{layer}H{head}k{k} or L{layer}H{head}c{r}[-{r2}...].
RELATION_TYPE_RE = re.compile(r"^L\d{1,4}H\d{1,4}(k\d{1,5}|c\d{1,5}(-\d{1,5})*)$")
SPAN_KINDS = frozenset({"entity", "noun_chunk", "word"})


# ── whitelists ───────────────────────────────────────────────────────────────────────────────────


def check_relation_type(relation: Any) -> str:
    """Return ``relation`` if it is a relation type id (``L2H8k12``, ``L0H3c1-4``); else ValueError."""
    if not isinstance(relation, str) or not RELATION_TYPE_RE.fullmatch(relation):
        raise ValueError(
            f"relation type {relation!r} is not allowed (expected L<layer>H<head>k<k> or "
            "L<layer>H<head>c<r>[-<r>...], e.g. 'L2H8k12')"
        )
    return relation


def check_entity_label(label: Any) -> str:
    """Return the Neo4j label for a spaCy entity label ("PERSON" -> "Person"); else ValueError."""
    if not isinstance(label, str) or label not in ENTITY_LABELS:
        raise ValueError(f"entity label {label!r} is not allowed (expected one of {', '.join(ENTITY_LABELS)})")
    return ENTITY_LABELS[label]


def check_span(doc_id: str, index: int, label: Any, kind: Any) -> None:
    """ValueError unless ``kind`` is a span kind and ``label`` is "" or a whitelisted entity label."""
    if kind not in SPAN_KINDS:
        raise ValueError(f"document {doc_id!r}: span {index} has kind {kind!r} (expected one of {sorted(SPAN_KINDS)})")
    if label != "":
        try:
            check_entity_label(label)
        except ValueError as exc:
            raise ValueError(f"document {doc_id!r}: span {index}: {exc}") from None


def check_relation_labels(relation_labels: dict[str, str] | None) -> dict[str, str]:
    """A copy of {relation type id: label}, every id whitelisted and every label a string; else ValueError."""
    labels = dict(relation_labels or {})
    for relation, label in labels.items():
        check_relation_type(relation)
        if not isinstance(label, str):
            raise ValueError(f"label of relation type {relation!r} must be a string, got {label!r}")
    return labels


def entity_node_labels(label: str, kind: str) -> list[str]:
    """The extra Neo4j labels of a span: ``[ENTITY_LABELS[label]]`` for an entity, else none."""
    return [ENTITY_LABELS[label]] if kind == "entity" and label in ENTITY_LABELS else []


# ── constraints and indexes ──────────────────────────────────────────────────────────────────────

# Drivers whose database already got the schema in this process (so upserts do not repeat it).
_schema_done: weakref.WeakKeyDictionary[neo4j.Driver, set[str]] = weakref.WeakKeyDictionary()


def ensure_schema(driver: neo4j.Driver, database: str) -> None:
    """Create the constraints and indexes (idempotent: ``IF NOT EXISTS``) and wait until they are online."""
    for statement in queries.SCHEMA_STATEMENTS:
        # Schema changes cannot share a transaction with data writes; each runs on its own.
        driver.execute_query(statement, database_=database)
    driver.execute_query(queries.AWAIT_INDEXES, database_=database)
    _schema_done.setdefault(driver, set()).add(database)


def ensure_schema_once(driver: neo4j.Driver, database: str) -> None:
    """``ensure_schema`` unless this process already ran it for this driver and database."""
    if database not in _schema_done.get(driver, set()):
        ensure_schema(driver, database)
