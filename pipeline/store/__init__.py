"""Stage 6, the store: Neo4j connection, schema, idempotent upsert, read-back and the named queries.

All Cypher of the store lives in ``pipeline.store.queries`` (statements) and ``pipeline/store/cypher/``
(the saved queries for Neo4j Browser, also visible as ``queries/`` at the top of a checkout).
"""

from __future__ import annotations

from pipeline.store.neo4j_store import (
    DEFAULT_BATCH_SIZE,
    ENTITY_LABELS,
    QUERIES_DIR,
    RELATION_TYPE_RE,
    UpsertResult,
    check_entity_label,
    check_relation_type,
    clear_database,
    connect,
    delete_document,
    document_hashes,
    ensure_schema,
    load_query,
    query_names,
    read_graph,
    read_provenance,
    read_relation_labels,
    run_named_query,
    server_info,
    set_relation_labels,
    upsert_analyses,
    upsert_document,
    upsert_graph,
)
from pipeline.store.settings import Neo4jSettings

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ENTITY_LABELS",
    "QUERIES_DIR",
    "RELATION_TYPE_RE",
    "Neo4jSettings",
    "UpsertResult",
    "check_entity_label",
    "check_relation_type",
    "clear_database",
    "connect",
    "delete_document",
    "document_hashes",
    "ensure_schema",
    "load_query",
    "query_names",
    "read_graph",
    "read_provenance",
    "read_relation_labels",
    "run_named_query",
    "server_info",
    "set_relation_labels",
    "upsert_analyses",
    "upsert_document",
    "upsert_graph",
]
