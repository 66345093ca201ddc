"""Stage 6, the store: Neo4j connection, schema, idempotent upsert, read-back and the named queries.

Modules, in the order a write flows through them:

* ``settings`` - ``Neo4jSettings`` (URI, user, password, database; from the environment);
* ``connection`` - ``connect`` (fails fast with one line), ``server_info``, ``clear_database``;
* ``schema`` - constraints and indexes, and the whitelists every label, relation and relationship type passes;
* ``rows`` - an analysis or a graph's contribution, validated and shaped into statement rows;
* ``upsert`` - many documents per transaction: ``upsert_batch`` (one result per analysis),
  ``upsert_analyses``, ``upsert_graph``, ``upsert_document``, ``delete_document``, ``set_relation_labels``;
* ``read`` - the database back as provenance or as a ``KnowledgeGraph``;
* ``named`` - the saved queries of ``cypher/`` (also ``queries/`` at the top of a checkout);
* ``queries`` - every Cypher statement of the store, and nothing else.
"""

from __future__ import annotations

from pipeline.store.connection import clear_database, connect, server_info
from pipeline.store.named import QUERIES_DIR, load_query, query_names, run_named_query
from pipeline.store.read import (
    document_hashes,
    held_documents,
    load_provenance,
    read_graph,
    read_provenance,
    read_relation_labels,
)
from pipeline.store.schema import (
    ENTITY_LABELS,
    PRONOUN_LABEL,
    RELATES,
    RELATION_TYPE_RE,
    RELATIONSHIP_TYPES,
    check_entity_label,
    check_relation_type,
    ensure_schema,
    relationship_type,
)
from pipeline.store.settings import Neo4jSettings
from pipeline.store.upsert import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DOCUMENTS,
    DEFAULT_MAX_ROWS,
    BatchCallback,
    UpsertResult,
    delete_document,
    set_relation_labels,
    upsert_analyses,
    upsert_batch,
    upsert_document,
    upsert_graph,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_DOCUMENTS",
    "DEFAULT_MAX_ROWS",
    "ENTITY_LABELS",
    "PRONOUN_LABEL",
    "QUERIES_DIR",
    "RELATES",
    "RELATIONSHIP_TYPES",
    "RELATION_TYPE_RE",
    "BatchCallback",
    "Neo4jSettings",
    "UpsertResult",
    "check_entity_label",
    "check_relation_type",
    "clear_database",
    "connect",
    "delete_document",
    "document_hashes",
    "ensure_schema",
    "held_documents",
    "load_provenance",
    "load_query",
    "query_names",
    "read_graph",
    "read_provenance",
    "read_relation_labels",
    "relationship_type",
    "run_named_query",
    "server_info",
    "set_relation_labels",
    "upsert_analyses",
    "upsert_batch",
    "upsert_document",
    "upsert_graph",
]
