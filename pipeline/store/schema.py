"""The database schema (constraints, indexes) and the whitelists every label and type passes first.

Labels, relation names and relationship types that end up in the database as labels, relationship
types or ``type`` properties must pass ``check_entity_label`` / ``check_relation_type`` /
``relationship_type`` / ``span_node_labels``; anything else raises ValueError naming the value,
before anything is written.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

import neo4j

from pipeline.store import queries
from pipeline.types import DEPENDENCY_RELATIONS

__all__ = [
    "ALL_ENTITY_NODE_LABELS",
    "ALL_SPAN_NODE_LABELS",
    "ENTITY_LABELS",
    "PRONOUN_LABEL",
    "RELATES",
    "RELATIONSHIP_TYPES",
    "RELATION_TYPE_RE",
    "SPAN_KINDS",
    "check_entity_label",
    "check_relation_labels",
    "check_relation_type",
    "check_span",
    "ensure_schema",
    "ensure_schema_once",
    "entity_node_labels",
    "relationship_type",
    "span_node_labels",
]

#: spaCy (OntoNotes) entity label -> the extra Neo4j label an entity span gets. The only labels,
#: besides the fixed Document/Sentence/Span/RelationType and PRONOUN_LABEL, that ever reach the database.
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
#: Every extra entity label, sorted.
ALL_ENTITY_NODE_LABELS: list[str] = sorted(ENTITY_LABELS.values())
#: The extra Neo4j label of a span of kind "pronoun".
PRONOUN_LABEL = "Pronoun"
#: Every extra span label (removed from a span before its current one is set).
ALL_SPAN_NODE_LABELS: list[str] = sorted([*ENTITY_LABELS.values(), PRONOUN_LABEL])

#: Untyped subspace ids as pipeline.model.extractor writes them: L{layer}H{head}k{k} or L{layer}H{head}c{r}[-{r2}...].
RELATION_TYPE_RE = re.compile(r"^L\d{1,4}H\d{1,4}(k\d{1,5}|c\d{1,5}(-\d{1,5})*)$")
SPAN_KINDS = frozenset({"entity", "noun_chunk", "word", "pronoun"})

#: The relationship type of the aggregate edges of untyped subspace ids (the id is their ``type`` property).
RELATES = "RELATES"
#: Typed relation (a UD name from DEPENDENCY_RELATIONS) -> its Neo4j relationship type: upper case,
#: ':' -> '_' (``nsubj`` -> ``NSUBJ``, ``nmod:poss`` -> ``NMOD_POSS``). With RELATES, the only
#: relationship types besides the fixed MENTIONED_IN/EVIDENCE/PART_OF/FACT/FACT_EVIDENCE that ever reach
#: the database (no UD name upper-cases to FACT or FACT_EVIDENCE).
RELATIONSHIP_TYPES: dict[str, str] = {r: r.upper().replace(":", "_") for r in DEPENDENCY_RELATIONS}


# ── whitelists ───────────────────────────────────────────────────────────────────────────────────


def check_relation_type(relation: Any) -> str:
    """Return ``relation`` if it is a typed relation's UD name (``nsubj``, ``nmod:poss``: one of
    ``pipeline.types.DEPENDENCY_RELATIONS``) or an untyped subspace id (``L2H8k12``, ``L0H3c1-4``);
    else ValueError naming it."""
    if not isinstance(relation, str) or not (relation in RELATIONSHIP_TYPES or RELATION_TYPE_RE.fullmatch(relation)):
        raise ValueError(
            f"relation type {relation!r} is not allowed (expected a dependency relation, one of "
            f"{', '.join(RELATIONSHIP_TYPES)}, or a subspace id L<layer>H<head>k<k> or "
            "L<layer>H<head>c<r>[-<r>...], e.g. 'L2H8k12')"
        )
    return relation


def relationship_type(relation: Any) -> str:
    """The Neo4j relationship type of a relation's aggregate edge: ``RELATIONSHIP_TYPES[relation]`` for a
    typed relation (``obj`` -> ``OBJ``), ``RELATES`` for a subspace id; ValueError (naming it) for anything else.

    The only way a relationship type is made from data: Cypher takes it as a parameter (``[r:$(row.rt)]``).
    """
    check_relation_type(relation)
    return RELATIONSHIP_TYPES.get(relation, RELATES)


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
    """A copy of {relation: label}, every relation whitelisted and every label a string; else ValueError."""
    labels = dict(relation_labels or {})
    for relation, label in labels.items():
        check_relation_type(relation)
        if not isinstance(label, str):
            raise ValueError(f"label of relation type {relation!r} must be a string, got {label!r}")
    return labels


def entity_node_labels(label: str, kind: str) -> list[str]:
    """The extra entity label of a span: ``[ENTITY_LABELS[label]]`` for an entity, else none."""
    return [ENTITY_LABELS[label]] if kind == "entity" and label in ENTITY_LABELS else []


def span_node_labels(label: str, kind: str) -> list[str]:
    """The extra Neo4j labels of a span: its entity label for an entity, ``Pronoun`` for a pronoun, else none."""
    return [PRONOUN_LABEL] if kind == "pronoun" else entity_node_labels(label, kind)


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
