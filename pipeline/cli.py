"""The ``qkgraph`` command line (also ``python -m pipeline.cli``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer

from .errors import QkgraphError

app = typer.Typer(
    name="qkgraph",
    help="Knowledge graphs from the relations a transformer's query-key circuits compute between tokens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"qkgraph: error: {message}", err=True)
    raise typer.Exit(code)


@app.command("neo4j-dev")
def neo4j_dev(
    port: int = typer.Option(7687, help="Bolt port on 127.0.0.1."),
    home: Optional[Path] = typer.Option(None, help="Store directory (new or empty); a temporary one if omitted."),
    heap_mb: int = typer.Option(512, help="JVM heap in MiB."),
    pagecache_mb: int = typer.Option(128, help="Neo4j page cache in MiB."),
    password: Optional[str] = typer.Option(
        None, envvar="NEO4J_DEV_PASSWORD", help="Enable auth with user neo4j and this password (8+ chars)."
    ),
) -> None:
    """Run a throwaway embedded Neo4j 5.26 Community (no Docker needed) until Ctrl-C."""
    from .neo4j_dev import Neo4jDevServer

    server = Neo4jDevServer(port=port, home=home, heap_mb=heap_mb, pagecache_mb=pagecache_mb, password=password)
    try:
        server.start()
    except QkgraphError as exc:
        _fail(str(exc))
    auth = "auth: neo4j/<password>" if password else "no auth"
    typer.echo(f"Neo4j ready at {server.uri} ({auth}, started in {server.startup_seconds:.1f}s); Ctrl-C stops it.")
    typer.echo(f"  export NEO4J_URI={server.uri}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if server.process is None or server.process.poll() is not None:
                _fail("the Neo4j process exited unexpectedly:\n" + "\n".join(server.log[-20:]))
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    typer.echo("Neo4j stopped.")


@app.command("check-neo4j")
def check_neo4j(
    neo4j_uri: Optional[str] = typer.Option(None, envvar="NEO4J_URI"),
    neo4j_user: Optional[str] = typer.Option(None, envvar="NEO4J_USER"),
    neo4j_password: Optional[str] = typer.Option(None, envvar="NEO4J_PASSWORD"),
    neo4j_database: Optional[str] = typer.Option(None, envvar="NEO4J_DATABASE"),
) -> None:
    """Check that Neo4j is reachable with these settings, and print its version."""
    from .settings import Neo4jSettings
    from .store import connect, server_info

    settings = Neo4jSettings.from_env(neo4j_uri, neo4j_user, neo4j_password, neo4j_database)
    if settings is None:
        _fail("no Neo4j URI: pass --neo4j-uri or set NEO4J_URI")
    try:
        driver = connect(settings)
    except QkgraphError as exc:
        _fail(str(exc))
    with driver:
        info = server_info(driver, settings.database)
    typer.echo(f"ok: {info['name']} {info['version']} {info['edition']} at {settings.uri}, database {settings.database!r}")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except QkgraphError as exc:
        typer.echo(f"qkgraph: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
