"""Scheduled ingestion on one machine: ``serve`` a cron deployment of the ingest flow.

    qkgraph serve --source /data/incoming --cron "0 2 * * *" --out /data/out/graph.graphml

(the CLI command is ``serve_command`` below), or from Python::

    from flows.serve import serve_ingest
    serve_ingest(["/data/incoming"], "0 2 * * *", out="/data/out/graph.graphml")

The process blocks: it registers the deployment with the Prefect API (PREFECT_API_URL, or a
temporary local server when unset), polls for scheduled runs and executes each in a subprocess.
Every night the flow re-reads the source folders: new and changed files are extracted, unchanged
ones are cache hits (flows/ingest.py). Neo4j is written when NEO4J_URI is set (or ``neo4j_uri``
given); the password comes from NEO4J_PASSWORD in this process's environment, or from a Prefect
Secret block named by ``neo4j_password_secret``. It is never a deployment parameter.

For a work pool and workers instead of one serving process, see prefect.yaml and docs/flows.md.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from pipeline.ingest.settings import DEFAULT_BATCH_CHARS
from pipeline.model.defaults import DEFAULT_MODEL

DEFAULT_CRON = "0 2 * * *"
DEFAULT_NAME = "qkgraph-nightly"


def _absolute(source: str) -> str:
    # Runs start in the serving process's working directory, but an absolute path survives a move.
    return os.path.abspath(os.path.expanduser(source))


def ingest_parameters(
    source: list[str],
    *,
    out: str | None = None,
    html: str | None = None,
    model: str = DEFAULT_MODEL,
    relation_types: str = "typed",
    layers: str = "all",
    top_k: int = 3,
    threshold: float = 0.7,
    batch_size: int = 32,
    batch_chars: int = DEFAULT_BATCH_CHARS,
    neo4j_uri: str | None = None,
    neo4j_user: str | None = None,
    neo4j_database: str | None = None,
    neo4j_password_secret: str | None = None,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """The flow parameters a deployment stores (visible in the UI): no password among them."""
    if not source:
        raise ValueError("at least one --source (file, folder or glob) is needed")
    params: dict[str, Any] = {
        "sources": [_absolute(s) for s in source],
        "model": model,
        "relation_types": relation_types,
        "layers": layers,
        "top_k": top_k,
        "threshold": threshold,
        "batch_size": batch_size,
        "batch_chars": batch_chars,
    }
    optional = {
        "out": _absolute(out) if out else None,
        "html": _absolute(html) if html else None,
        "neo4j_uri": neo4j_uri,
        "neo4j_user": neo4j_user,
        "neo4j_database": neo4j_database,
        "neo4j_password_secret": neo4j_password_secret,
        "cache_dir": _absolute(cache_dir) if cache_dir else None,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def build_deployment(
    source: list[str],
    cron: str = DEFAULT_CRON,
    *,
    name: str = DEFAULT_NAME,
    timezone: str | None = None,
    dask_address: str | None = None,
    dask_workers: int = 0,
    **parameters: Any,
) -> Any:
    """A RunnerDeployment of the ingest flow on ``cron`` (one run at a time), for ``prefect.serve``.

    ``dask_address`` / ``dask_workers`` > 0 put extraction on Dask (flows/scale_out.py).
    ``parameters`` are those of ``ingest_parameters``.
    """
    from prefect.schedules import Cron

    from flows.ingest import ingest_flow
    from flows.scale_out import ingest_flow_on_dask

    flow = ingest_flow_on_dask(dask_address, dask_workers or 2) if (dask_address or dask_workers) else ingest_flow
    return flow.to_deployment(
        name=name,
        schedule=Cron(cron, timezone=timezone) if timezone else Cron(cron),
        parameters=ingest_parameters(source, **parameters),
        concurrency_limit=1,  # a long night does not overlap with the next one
        tags=["qkgraph"],
        description="qkgraph: ingest new and changed documents into the knowledge graph",
    )


def serve_ingest(
    source: list[str],
    cron: str = DEFAULT_CRON,
    out: str | None = None,
    html: str | None = None,
    *,
    neo4j_uri: str | None = None,
    neo4j_user: str | None = None,
    neo4j_database: str | None = None,
    neo4j_password_secret: str | None = None,
    dask_address: str | None = None,
    dask_workers: int = 0,
    model: str = DEFAULT_MODEL,
    relation_types: str = "typed",
    layers: str = "all",
    top_k: int = 3,
    threshold: float = 0.7,
    batch_size: int = 32,
    batch_chars: int = DEFAULT_BATCH_CHARS,
    cache_dir: str | None = None,
    name: str = DEFAULT_NAME,
    timezone: str | None = None,
) -> None:
    """Serve the nightly ingest deployment until interrupted (blocks; Ctrl-C stops it)."""
    from prefect import serve

    deployment = build_deployment(
        source,
        cron,
        name=name,
        timezone=timezone,
        dask_address=dask_address,
        dask_workers=dask_workers,
        out=out,
        html=html,
        model=model,
        relation_types=relation_types,
        layers=layers,
        top_k=top_k,
        threshold=threshold,
        batch_size=batch_size,
        batch_chars=batch_chars,
        neo4j_uri=neo4j_uri,
        neo4j_user=neo4j_user,
        neo4j_database=neo4j_database,
        neo4j_password_secret=neo4j_password_secret,
        cache_dir=cache_dir,
    )
    serve(deployment, limit=1)


def serve_command(
    source: list[str] = typer.Option(
        ..., "--source", "-s", help="File, folder or glob to ingest on every run (repeatable)."
    ),
    cron: str = typer.Option(DEFAULT_CRON, help="Cron schedule, e.g. '0 2 * * *' (02:00 every night)."),
    timezone: str | None = typer.Option(None, help="IANA time zone of the schedule (default UTC)."),
    out: str | None = typer.Option(
        None, help="GraphML output, merged run after run (default out/graph.graphml without Neo4j)."
    ),
    html: str | None = typer.Option(None, help="Also write the interactive HTML view here."),
    model: str = typer.Option(DEFAULT_MODEL, help="Model name, folder or .gguf file."),
    relation_types: str = typer.Option(
        "typed", "--relation-types", help="typed (calibrated dependency relations) or subspaces (untyped)."
    ),
    layers: str = typer.Option("all", help="Layers: all, 0,2,4 or 1-3."),
    top_k: int = typer.Option(3, "--top-k", help="Untyped subspaces per layer (--relation-types subspaces)."),
    threshold: float = typer.Option(0.7, help="Calibrated probability (typed) or attention share threshold (0..1)."),
    batch_size: int = typer.Option(
        32, help="Documents per Neo4j write; at most this many new documents per extraction task."
    ),
    batch_chars: int = typer.Option(
        DEFAULT_BATCH_CHARS, help="Characters of new documents per extraction task (even work on Dask workers)."
    ),
    neo4j_uri: str | None = typer.Option(None, envvar="NEO4J_URI", help="Write to Neo4j (else files only)."),
    neo4j_user: str | None = typer.Option(None, envvar="NEO4J_USER"),
    neo4j_database: str | None = typer.Option(None, envvar="NEO4J_DATABASE"),
    neo4j_password_secret: str | None = typer.Option(
        None, help="Prefect Secret block holding the Neo4j password (default: NEO4J_PASSWORD in the environment)."
    ),
    dask_address: str | None = typer.Option(
        None, envvar="QKGRAPH_DASK_ADDRESS", help="Extract on this Dask scheduler."
    ),
    dask_workers: int = typer.Option(0, help="Extract on a LocalCluster of N worker processes (0: in-process)."),
    cache_dir: str | None = typer.Option(None, envvar="QKGRAPH_CACHE_DIR", help="Analysis cache folder."),
    name: str = typer.Option(DEFAULT_NAME, help="Deployment name."),
) -> None:
    """Run the ingest flow on a cron schedule (Prefect serve); new and changed files are picked up each run."""
    from pipeline.ingest import parse_layers

    if not 0.0 <= threshold <= 1.0:
        raise typer.BadParameter(f"--threshold must be in [0, 1], got {threshold}")
    if relation_types not in ("typed", "subspaces"):
        raise typer.BadParameter(f"--relation-types must be typed or subspaces, got {relation_types!r}")
    try:
        parse_layers(layers)
    except ValueError:
        raise typer.BadParameter(
            f"--layers must be 'all', a list like 0,2,4 or a range like 1-3; got {layers!r}"
        ) from None
    missing = [s for s in source if not any(ch in s for ch in "*?[") and not os.path.exists(s)]
    if missing:
        raise typer.BadParameter(f"source does not exist: {', '.join(missing)}")
    try:
        from prefect.schedules import Cron

        Cron(cron)
    except ValueError as exc:  # pydantic's ValidationError and croniter's errors are ValueErrors
        raise typer.BadParameter(f"--cron {cron!r} is not a cron expression: {exc}") from None
    typer.echo(f"serving {name!r} on {cron!r}: sources {', '.join(source)}; Ctrl-C stops it")
    serve_ingest(
        source,
        cron,
        out,
        html,
        neo4j_uri=neo4j_uri,
        neo4j_user=neo4j_user,
        neo4j_database=neo4j_database,
        neo4j_password_secret=neo4j_password_secret,
        dask_address=dask_address,
        dask_workers=dask_workers,
        model=model,
        relation_types=relation_types,
        layers=layers,
        top_k=top_k,
        threshold=threshold,
        batch_size=batch_size,
        batch_chars=batch_chars,
        cache_dir=cache_dir,
        name=name,
        timezone=timezone,
    )


if __name__ == "__main__":
    typer.run(serve_command)
