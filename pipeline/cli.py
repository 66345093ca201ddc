"""The ``qkgraph`` command line (also ``python -m pipeline.cli``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import NoReturn

import typer

from pipeline.errors import QkgraphError
from pipeline.ingest.settings import DEFAULT_FACT_THRESHOLD, DEFAULT_OUT, DEFAULT_THRESHOLD, DEFAULT_TOP_K
from pipeline.model.defaults import DEFAULT_MODEL

app = typer.Typer(
    name="qkgraph",
    help="Knowledge graphs from the relations a transformer's query-key circuits compute between tokens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from pipeline import __version__

        typer.echo(f"qkgraph {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Knowledge graphs from the relations a transformer's query-key circuits compute between tokens."""


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"qkgraph: error: {message}", err=True)
    raise typer.Exit(code)


@app.command("neo4j-dev")
def neo4j_dev(
    port: int = typer.Option(7687, help="Bolt port on 127.0.0.1."),
    home: Path | None = typer.Option(
        None,
        help="Store directory kept between runs: a new or empty one is created, one made by an earlier "
        "neo4j-dev run is reused. A temporary store (deleted on exit) if omitted.",
    ),
    browser: bool = typer.Option(False, "--browser", help="Also serve Neo4j Browser over HTTP (at /browser/)."),
    http_port: int = typer.Option(7474, help="HTTP port on 127.0.0.1 for Neo4j Browser (with --browser)."),
    heap_mb: int = typer.Option(512, help="JVM heap in MiB."),
    pagecache_mb: int = typer.Option(128, help="Neo4j page cache in MiB."),
    password: str | None = typer.Option(
        None,
        envvar="NEO4J_DEV_PASSWORD",
        help="Enable auth with user neo4j and this password (8+ chars). Prefer NEO4J_DEV_PASSWORD: an option is visible to `ps`.",
    ),
) -> None:
    """Run an embedded Neo4j 5.26 Community (no Docker needed) until Ctrl-C."""
    from pipeline.store.dev_server import Neo4jDevServer

    server = Neo4jDevServer(
        port=port,
        home=home,
        heap_mb=heap_mb,
        pagecache_mb=pagecache_mb,
        password=password,
        browser=browser,
        http_port=http_port if browser else None,
    )
    try:
        server.start()
    except QkgraphError as exc:
        _fail(str(exc))
    auth = "auth: user neo4j + your password" if password else "no auth"
    store = f"store kept in {server.home}" if home is not None else "temporary store"
    typer.echo(
        f"Neo4j ready at {server.uri} ({auth}, {store}, started in {server.startup_seconds:.1f}s); Ctrl-C stops it."
    )
    typer.echo(f"  export NEO4J_URI={server.uri}")
    if server.browser_url:
        login = "username neo4j, your password" if password else "authentication type 'No authentication'"
        typer.echo(f"  Neo4j Browser: {server.browser_url}  (connect URL {server.uri}, {login})")
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
    neo4j_uri: str | None = typer.Option(None, envvar="NEO4J_URI"),
    neo4j_user: str | None = typer.Option(None, envvar="NEO4J_USER"),
    neo4j_password: str | None = typer.Option(
        None,
        envvar="NEO4J_PASSWORD",
        help="Prefer the NEO4J_PASSWORD environment variable: an option is visible to `ps`.",
    ),
    neo4j_database: str | None = typer.Option(None, envvar="NEO4J_DATABASE"),
) -> None:
    """Check that Neo4j is reachable with these settings, and print its version."""
    from pipeline.store import connect, server_info
    from pipeline.store.settings import Neo4jSettings

    settings = Neo4jSettings.from_env(neo4j_uri, neo4j_user, neo4j_password, neo4j_database)
    if settings is None:
        _fail("no Neo4j URI: pass --neo4j-uri or set NEO4J_URI")
    try:
        driver = connect(settings)
    except QkgraphError as exc:
        _fail(str(exc))
    with driver:
        info = server_info(driver, settings.database)
    typer.echo(
        f"ok: {info['name']} {info['version']} {info['edition']} at {settings.uri}, database {settings.database!r}"
    )


def _check_writable(option: str, path: Path | None) -> None:
    """Fail before any extraction work if an output path cannot be written."""
    if path is None:
        return
    if path.is_dir():
        _fail(f"{option} {path} is a directory; give a file path such as {path / 'graph.graphml'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        _fail(f"{option} {path}: cannot write in {parent}")


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders: .txt, .md, .jsonl (id, text), .conllu."),
    model: str = typer.Option(DEFAULT_MODEL, help="Model: the packaged default, smollm2, a folder or a .gguf file."),
    relation_types: str = typer.Option(
        "typed",
        "--relation-types",
        help="typed: the model's calibrated dependency relations (nsubj, obj, ...); "
        "subspaces: untyped relational subspaces, for exploration.",
    ),
    layers: str = typer.Option("all", help="Layers to use: all, 0,2,4 or 1-3."),
    top_k: int = typer.Option(
        DEFAULT_TOP_K, "--top-k", help="Untyped subspaces per layer (--relation-types subspaces)."
    ),
    threshold: float = typer.Option(
        DEFAULT_THRESHOLD,
        help="typed: keep word pairs whose calibrated probability is at least this; "
        "subspaces: span pairs whose pooled attention share is (0..1).",
    ),
    fact_threshold: float = typer.Option(
        DEFAULT_FACT_THRESHOLD,
        help="typed: keep facts (subject -predicate-> object) whose calibrated probability is at least this.",
    ),
    show: int = typer.Option(0, help="Print the N strongest relations and the N most probable facts of the graph."),
    out: Path | None = typer.Option(Path(DEFAULT_OUT), help="GraphML output (node-link JSON is written beside it)."),
    html: Path | None = typer.Option(None, help="Also write an interactive HTML view here."),
    html_layer: str = typer.Option(
        "all", "--html-layer", help="What the HTML view draws: all (relations and facts), relations, or facts."
    ),
    fresh: bool = typer.Option(False, help="Start an empty graph instead of updating the one at --out."),
    strict: bool = typer.Option(False, help="Exit with code 3 if any input was skipped or failed."),
    neo4j_uri: str | None = typer.Option(None, envvar="NEO4J_URI", help="Also write to Neo4j (bolt:// or neo4j://)."),
    neo4j_user: str | None = typer.Option(None, envvar="NEO4J_USER"),
    neo4j_password: str | None = typer.Option(
        None,
        envvar="NEO4J_PASSWORD",
        help="Prefer the NEO4J_PASSWORD environment variable: a password given as an option is visible to `ps`.",
    ),
    neo4j_database: str | None = typer.Option(None, envvar="NEO4J_DATABASE"),
) -> None:
    """Build a typed-relation knowledge graph from documents.

    Exit codes: 0 done; 2 bad arguments, unknown model, unreadable path or unreachable Neo4j (nothing
    written); 3 done but inputs were skipped or failed and --strict was given; 1 an unexpected error.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.ingest import IngestReport, IngestSettings, LocalAnalyser, load_models, parse_layers, run_ingest
    from pipeline.ingest.models import UntypedFallbackWarning
    from pipeline.sinks import FileSink, Neo4jSink, Sink
    from pipeline.store.settings import Neo4jSettings
    from pipeline.text.sources import iter_documents

    try:
        settings = IngestSettings(
            model=model,
            relation_types=relation_types,
            layers=parse_layers(layers),
            top_k=top_k,
            threshold=threshold,
            fact_threshold=fact_threshold,
        )
    except ValueError as exc:
        _fail(f"{exc} (--layers is 'all', a list like 0,2,4 or a range like 1-3)" if "layer" in str(exc) else str(exc))
    _check_writable("--out", out)
    _check_writable("--html", html)
    from pipeline.graph.html import LAYERS

    if html_layer not in LAYERS:
        _fail(f"--html-layer must be one of {', '.join(LAYERS)}, got {html_layer!r}")
    neo = Neo4jSettings.from_env(neo4j_uri, neo4j_user, neo4j_password, neo4j_database)
    files = FileSink(out, html, fresh=fresh, html_layer=html_layer)  # type: ignore[arg-type]  # checked above
    sinks: list[Sink] = [files]
    if neo is not None:
        sinks.append(Neo4jSink(neo))
    try:
        for sink in sinks:  # connect and load before any extraction work
            sink.open()
        inputs = iter_documents([str(p) for p in paths])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UntypedFallbackWarning)
            analyser = LocalAnalyser(load_models(settings))
        for w in caught:
            if issubclass(w.category, UntypedFallbackWarning):
                typer.echo(f"warning: {w.message}", err=True)
    except (QkgraphError, ValueError) as exc:
        for sink in sinks:
            sink.abort()
        _fail(str(exc))
    if files.loaded_documents:
        typer.echo(f"updating {files.json_path} ({files.loaded_documents} documents already in it)")

    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        TextColumn("{task.completed} docs"),
        TextColumn("{task.fields[tps]:.0f} tokens/s"),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("ingest", total=None, tps=0.0)
        t0 = time.perf_counter()

        def advance(r: IngestReport) -> None:
            elapsed = max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=r.analysed, tps=r.tokens / elapsed)

        report = run_ingest(inputs, sinks, analyser, batch_size=1, on_progress=advance)
    summary = files.graph.summary()
    counts = report.counts(files.name)
    typer.echo(
        f"documents: {counts['added']} added, {counts['replaced']} replaced, {counts['unchanged']} unchanged; "
        f"skipped: {len(report.skipped)} {report.skipped_by_reason() or ''}".rstrip()
        + (f"; failed: {len(report.failed)}" if report.failed else "")
    )
    if report.replaced_chars:
        typer.echo(
            f"xml-illegal characters replaced: {report.replaced_chars} in {report.documents_with_replacements} "
            "document(s) (each by one space or U+FFFD, so offsets hold)"
        )
    for s in report.skipped:
        typer.echo(f"  skipped {s.source} ({s.reason}) {s.detail}", err=True)
    for f in report.failed:
        typer.echo(f"  failed {f.source} ({f.stage}) {f.error}", err=True)
    typer.echo(
        f"graph: {summary['nodes']} nodes, {summary['edges']} edges, {summary.get('relation_types', 0)} relation types, "
        f"{summary.get('facts', 0)} facts; {report.tokens} tokens in {report.seconds:.1f}s"
    )
    if show > 0:
        for source, relation, target, score in list(files.graph.triples())[:show]:
            typer.echo(f"  {source} -{relation}-> {target}  ({score:.2f})")
        facts = sorted(files.graph.facts(), key=lambda f: (-f[3], f[0], f[1], f[2]))[:show]
        if facts:
            typer.echo("facts:")
        nodes = files.graph.g.nodes
        for subject, predicate, obj, probability in facts:
            typer.echo(
                f"  {nodes[subject].get('text', subject)} -[{predicate}]-> {nodes[obj].get('text', obj)}  ({probability:.2f})"
            )
    for kind, path in report.outputs.items():
        if kind == "neo4j":
            n = report.counts("neo4j")
            typer.echo(
                f"upserted into Neo4j at {path}: {n['added']} added, {n['replaced']} replaced, {n['unchanged']} unchanged"
            )
        else:
            typer.echo(f"wrote {kind}: {path}")
    for name, error in report.sink_errors.items():
        typer.echo(f"qkgraph: error: {name}: {error}", err=True)
    if report.sink_errors:
        raise typer.Exit(2)
    if strict and (report.skipped or report.failed):
        raise typer.Exit(3)


@app.command("eval")
def eval_command(
    conllu: Path = typer.Argument(..., help="Gold CoNLL-U file to score on (e.g. UD EWT dev)."),
    model: str = typer.Option(DEFAULT_MODEL, help="Model name or path."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
    plots: Path | None = typer.Option(None, help="Write PNG plots into this folder."),
    select_on: Path | None = typer.Option(None, help="Choose units on this CoNLL-U file, score the whole of CONLLU."),
    max_sentences: int | None = typer.Option(None, help="Use only the first N sentences."),
    write_labels: bool = typer.Option(False, help="Write the relation-label artifact for the model."),
) -> None:
    """Score relational subspaces against gold dependency arcs (Clark et al. 2019's protocol)."""
    from pipeline.evaluation import main as evaluation_main

    argv = [str(conllu), "--model", model]
    if json_out:
        argv.append("--json")
    if plots is not None:
        argv += ["--plots", str(plots)]
    if select_on is not None:
        argv += ["--select-on", str(select_on)]
    if max_sentences is not None:
        argv += ["--max-sentences", str(max_sentences)]
    if write_labels:
        argv.append("--write-labels")
    code = evaluation_main(argv)
    raise typer.Exit(int(code or 0))


@app.command("eval-facts")
def eval_facts_command(
    conllu: Path = typer.Argument(..., help="Gold CoNLL-U file to score facts on (e.g. UD EWT dev)."),
    select_on: Path | None = typer.Option(
        None, help="Choose what is tunable on this CoNLL-U file and score the whole of CONLLU (else split by document)."
    ),
    model: str = typer.Option(DEFAULT_MODEL, help="Model name or path."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
    plot: Path | None = typer.Option(None, help="Write the precision/recall curves as a PNG here."),
    max_documents: int | None = typer.Option(None, help="Use only the first N documents of each part."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Leave out the mama and proximity rows."),
    write_calibration: bool = typer.Option(
        False, help="Fit the fact calibration map on the selection documents and write it into the label artifact."
    ),
) -> None:
    """Score the graph's facts against gold facts of UD trees, beside spaCy, MAMA-style and proximity rows."""
    from pipeline.evaluation.facts import main as facts_main

    argv = [str(conllu), "--model", model]
    if select_on is not None:
        argv += ["--select-on", str(select_on)]
    if json_out:
        argv.append("--json")
    if plot is not None:
        argv += ["--plot", str(plot)]
    if max_documents is not None:
        argv += ["--max-documents", str(max_documents)]
    if no_baselines:
        argv.append("--no-baselines")
    if write_calibration:
        argv.append("--write-calibration")
    raise typer.Exit(int(facts_main(argv) or 0))


def _register_serve() -> None:
    # The scheduling command lives with the flows (flows/serve.py); registered here so the one CLI has it.
    try:
        from flows.serve import serve_command
    except ImportError:  # the library installed without flows/: no serve command
        return
    app.command("serve")(serve_command)


_register_serve()


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
