"""Connecting to Neo4j, and the small helpers every other store module runs its statements through."""

from __future__ import annotations

from typing import Any

import neo4j
from neo4j import exceptions as neo4j_exc

from pipeline.errors import Neo4jConnectionError
from pipeline.store import queries
from pipeline.store.settings import Neo4jSettings

__all__ = ["BOLT_SCHEMES", "clear_database", "connect", "read_rows", "server_info", "session"]

#: URI schemes the Bolt driver speaks; anything else is refused with a one-line message before connecting.
BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


def connect(settings: Neo4jSettings, timeout_s: float = 10.0) -> neo4j.Driver:
    """Open a driver and prove that the server, the credentials and the database all work.

    Raises Neo4jConnectionError with one line saying which of the three failed; no driver stack trace
    reaches the user. Call it before any work so a bad setting costs nothing.
    """
    scheme = settings.uri.split("://", 1)[0].lower() if "://" in settings.uri else ""
    if scheme not in BOLT_SCHEMES:
        hint = (
            " (that is an HTTP address, e.g. Neo4j Browser's; Bolt listens on port 7687)"
            if scheme.startswith("http")
            else ""
        )
        raise Neo4jConnectionError(
            f"Neo4j URI {settings.uri!r} must start with bolt:// or neo4j:// (or their +s / +ssc forms){hint}"
        )
    if settings.database.lower() == "system":
        raise Neo4jConnectionError(
            "database 'system' holds Neo4j's own users and settings, not graphs: "
            "give a user database such as 'neo4j' (--neo4j-database / NEO4J_DATABASE)"
        )
    auth = None if settings.user is None else (settings.user, settings.password or "")
    try:
        driver = neo4j.GraphDatabase.driver(
            settings.uri, auth=auth, connection_timeout=timeout_s, max_transaction_retry_time=30.0
        )
    except (ValueError, neo4j_exc.ConfigurationError) as exc:
        raise Neo4jConnectionError(f"invalid Neo4j URI {settings.uri!r}: {exc}") from None
    try:
        driver.verify_connectivity()
        driver.execute_query(
            queries.CONNECTIVITY_CHECK, database_=settings.database, routing_=neo4j.RoutingControl.READ
        )
    except neo4j_exc.AuthError:
        driver.close()
        raise Neo4jConnectionError(
            f"Neo4j at {settings.uri} rejected the credentials for user {settings.user!r} "
            "(check NEO4J_USER / NEO4J_PASSWORD)"
        ) from None
    except neo4j_exc.ServiceUnavailable:
        driver.close()
        raise Neo4jConnectionError(
            f"cannot reach Neo4j at {settings.uri} (is the server running and the address right?)"
        ) from None
    except neo4j_exc.ClientError as exc:
        driver.close()
        if exc.code and "DatabaseNotFound" in exc.code:
            raise Neo4jConnectionError(
                f"Neo4j at {settings.uri} has no database {settings.database!r} (check NEO4J_DATABASE)"
            ) from None
        raise Neo4jConnectionError(f"Neo4j at {settings.uri} refused the connection check: {exc.message}") from None
    except neo4j_exc.DriverError as exc:
        driver.close()
        raise Neo4jConnectionError(f"cannot use Neo4j at {settings.uri}: {exc}") from None
    except OSError as exc:
        driver.close()
        raise Neo4jConnectionError(f"cannot reach Neo4j at {settings.uri}: {exc}") from None
    return driver


def clear_database(driver: neo4j.Driver, database: str) -> None:
    """Delete every node and relationship (batched, so large graphs do not need one huge transaction).

    Relationships go first, 10,000 per inner transaction: a DETACH DELETE of 10,000 nodes would also
    delete all their relationships in that one transaction, which for hub nodes can exceed the
    server's transaction memory pool.
    """
    with driver.session(database=database) as s:
        s.run(queries.CLEAR_RELATIONSHIPS).consume()
        s.run(queries.CLEAR_NODES).consume()


def server_info(driver: neo4j.Driver, database: str) -> dict[str, Any]:
    """Name, version and edition of the server behind the driver."""
    records, _, _ = driver.execute_query(queries.SERVER_INFO, database_=database)
    return dict(records[0])


def session(driver: neo4j.Driver, database: str) -> neo4j.Session:
    """A session on ``database`` that does not log "property key does not exist" notices.

    Those fire for every query on a database that has not seen a property yet (a fresh one), and
    say nothing useful here; performance and deprecation notices still come through.
    """
    return driver.session(
        database=database,
        notifications_disabled_classifications=[neo4j.NotificationDisabledClassification.UNRECOGNIZED],
    )


def read_rows(driver: neo4j.Driver, database: str, query: str, **params: Any) -> list[dict[str, Any]]:
    """Run a read-only statement in a managed read transaction (retried on transient errors); rows as dicts."""

    def work(tx: neo4j.ManagedTransaction) -> list[dict[str, Any]]:
        return [record.data() for record in tx.run(query, params)]

    with session(driver, database) as s:
        return s.execute_read(work)
