"""Where the upsert time goes: round trips, server time (from result summaries) and client time.

Runs ``store.upsert_analyses`` over the first ``--docs`` UD EWT dev documents (bench/neo4j_upsert.py's
data) on a throwaway embedded Neo4j, wrapping the driver's ``TransactionBase.run`` to count statements and
time each statement from send to its last record (buffered at once, so the store's pipelining of
UNWIND batches is off while profiling: each statement's time is its own), by statement.

    .venv/bin/python bench/neo4j_profile.py --docs 80
    .venv/bin/python bench/neo4j_profile.py --synthetic --heap-mb 1024 --setting db.tx_state.memory_allocation=ON_HEAP

Also reports the CPU seconds of both processes over the upsert (the client's ``time.process_time``,
the server JVM's from /proc), which a loaded machine does not inflate as it does wall time, and the
JVM's garbage collection (pauses from its ``-Xlog:gc`` log). The server runs with the bench's
settings (``bench/neo4j_upsert.py``: ``store.BULK_WRITE_SETTINGS``) unless ``--default-settings``.

``--jfr``: a Java Flight Recorder recording of the server over the measured upsert (``jcmd``, JDK's
"profile" settings: a stack sample of each running Java thread every ~10-20 ms), broken down into the
server's phases (``JFR_PHASES``: a sample counts for every phase whose method is on its stack), as
shares of the samples of the Bolt worker threads, which run the statements and the commit.

    .venv/bin/python bench/neo4j_profile.py --synthetic --warm-rounds 2 --jfr
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from neo4j_upsert import BENCH_SERVER, EWT_DEV, EWT_LABELS, ewt_analyses, synthetic_analyses  # noqa: E402

from pipeline import store  # noqa: E402
from pipeline.store.dev_server import Neo4jDevServer  # noqa: E402
from pipeline.store.settings import Neo4jSettings  # noqa: E402


def jvm_cpu_s(server: Neo4jDevServer) -> float:
    """User + system CPU seconds of the server's JVM so far (Linux /proc)."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gc_pauses(log: Path) -> tuple[int, float]:
    """(pauses, milliseconds) in a JVM ``-Xlog:gc`` log so far."""
    text = log.read_text() if log.exists() else ""
    times = [float(m) for m in re.findall(r"Pause.* ([0-9.]+)ms$", text, flags=re.MULTILINE)]
    return len(times), sum(times)


#: (phase, a method on the stack) for --jfr, in the order printed; indented: part of the phase above.
JFR_PHASES: tuple[tuple[str, str], ...] = (
    ("statements", "CypherExecutableQuery.execute("),
    ("  node index seeks (span endpoints, MERGE)", "NodeIndexSeek"),
    ("  relationship creation", "relationshipCreate"),
    ("commit", "KernelTransactionImplementation.commit("),
    ("  commands from the transaction state", "KernelTransactionImplementation.extractCommands"),
    ("    relationship chains", "TransactionRecordState.relModify"),
    ("    relationship properties", "TransactionRecordState.relAddProperty"),
    ("  applying to the store", "InternalTransactionCommitProcess.applyToStore"),
    ("    index updates gathered", "IndexTransactionApplierFactory$SingleTransactionApplier.close"),
    ("      relationship commands sorted", "IndexUpdatesExtractor.getRelationshipCommands"),
    ("  transaction log", "TransactionAppender"),
    ("property work, anywhere", "Property"),
)


def jfr_events(recording: Path, event: str, *options: str) -> list[str]:
    """The text of each ``event`` in a JFR recording, as ``jfr print`` writes it."""
    text = subprocess.run(
        ["jfr", "print", *options, "--events", event, str(recording)], check=True, capture_output=True, text=True
    ).stdout
    return text.split(event + " {")[1:]


def jfr_samples(recording: Path) -> list[tuple[str, list[str]]]:
    """(thread name, stack frames innermost first) of each execution sample in a JFR recording."""
    samples = []
    for event in jfr_events(recording, "jdk.ExecutionSample", "--stack-depth", "128"):
        thread = re.search(r'sampledThread = "([^"]*)"', event)
        frames = re.findall(r"^\s{4}(\S.*?)(?: line: \d+)?$", event.split("stackTrace = [", 1)[-1], flags=re.MULTILINE)
        samples.append((thread.group(1) if thread else "", [f for f in frames if f != "..."]))
    return samples


def jfr_compile_seconds(recording: Path) -> dict[str, tuple[int, float]]:
    """{compiler: (compilations, seconds)} of the JIT during a JFR recording (JFR's "profile" settings
    record compilations of 100 ms or more)."""
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    out: dict[str, tuple[int, float]] = {}
    for event in jfr_events(recording, "jdk.Compilation"):
        duration = re.search(r"duration = ([0-9.]+) (ns|us|ms|s)\b", event)
        compiler = re.search(r'compiler = "([^"]+)"', event)
        if duration and compiler:
            n, secs = out.get(compiler.group(1), (0, 0.0))
            out[compiler.group(1)] = (n + 1, secs + float(duration.group(1)) * unit[duration.group(2)])
    return out


def print_jfr_breakdown(recording: Path) -> None:
    """Print the Bolt worker samples' shares by ``JFR_PHASES`` and the JIT's compile time."""
    for compiler, (n, secs) in sorted(jfr_compile_seconds(recording).items()):
        print(f"JIT during the upsert: {compiler} {n} compilations of 100 ms or more (JFR's threshold), {secs:.2f} s")
    samples = jfr_samples(recording)
    bolt = [frames for thread, frames in samples if thread.startswith("neo4j.BoltWorker")]
    print(f"JFR: {len(samples)} execution samples of the server's Java threads, {len(bolt)} in Bolt workers")
    for phase, method in JFR_PHASES:
        n = sum(1 for frames in bolt if any(method in f for f in frames))
        print(f"  {phase:48s} {100 * n / max(len(bolt), 1):5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=80)
    parser.add_argument("--synthetic", action="store_true", help="the bench's synthetic 100k-relation corpus instead")
    parser.add_argument("--heap-mb", type=int, default=None, help="server heap (default: the bench's)")
    parser.add_argument("--pagecache-mb", type=int, default=None, help="server page cache (default: the bench's)")
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE, a Neo4j setting (repeatable)")
    parser.add_argument("--jvm", action="append", default=[], help="a JVM option for the server (repeatable)")
    parser.add_argument("--max-rows", type=int, default=store.DEFAULT_MAX_ROWS, help="rows per transaction at most")
    parser.add_argument("--default-settings", action="store_true", help="without the bench's server settings")
    parser.add_argument(
        "--warm-rounds",
        type=int,
        default=0,
        help="full loads (then cleared) before the measured one, so the JIT has compiled the write path "
        "(as in bench/neo4j_upsert.py's later rounds)",
    )
    parser.add_argument(
        "--jfr", action="store_true", help="record the server with Java Flight Recorder (needs jcmd, jfr)"
    )
    args = parser.parse_args()
    if args.jfr and not (shutil.which("jcmd") and shutil.which("jfr")):
        parser.error("--jfr needs the JDK's jcmd and jfr on PATH")
    if args.synthetic:
        docs = synthetic_analyses(seed=1234, target_relations=100_000, n_docs=30)
        args.docs = len(docs)
        labels = None
    else:
        docs = ewt_analyses(EWT_DEV)[: args.docs + 1]
        labels = EWT_LABELS
    stats: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    from neo4j._sync.work.transaction import TransactionBase

    real_run = TransactionBase.run

    def counting_run(self, query, parameters=None, **kw):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        result = real_run(self, query, parameters, **kw)
        result._buffer_all()  # wait for the server here, so the time is this statement's
        name = next((n for n in dir(store.queries) if getattr(store.queries, n) == query), "other")
        stats[name][0] += 1
        stats[name][1] += (time.perf_counter() - t) * 1000
        # the server's own time: until the first record is available, then until the last was sent
        meta = result._metadata
        stats[name][2] += (meta.get("t_first") or 0) + (meta.get("t_last") or 0)
        server_ms[0] += (time.perf_counter() - t) * 1000
        return result

    server_ms = [0.0]
    commit_ms = [0.0, 0]
    real_commit = TransactionBase._commit

    def timed_commit(self):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return real_commit(self)
        finally:
            commit_ms[0] += (time.perf_counter() - t) * 1000
            commit_ms[1] += 1

    password = secrets.token_urlsafe(16)
    server_settings = {} if args.default_settings else dict(BENCH_SERVER["settings"])
    server_settings.update(s.split("=", 1) for s in args.setting)  # type: ignore[arg-type]
    gc_log = Path(tempfile.mkdtemp(prefix="qkgraph-gc-")) / "gc.log"
    dev = Neo4jDevServer(
        heap_mb=args.heap_mb or BENCH_SERVER["heap_mb"],
        pagecache_mb=args.pagecache_mb or BENCH_SERVER["pagecache_mb"],
        password=password,
        settings=server_settings,
        jvm_args=[*([] if args.default_settings else BENCH_SERVER["jvm_args"]), *args.jvm, f"-Xlog:gc:file={gc_log}"],
    )
    print(
        f"server: heap {dev.heap_mb} MiB, page cache {dev.pagecache_mb} MiB, settings {server_settings}, jvm {dev.jvm_args}"
    )
    with dev as server:
        settings = Neo4jSettings(uri=server.uri, user="neo4j", password=password)
        driver = store.connect(settings, timeout_s=30.0)
        db = settings.database
        store.ensure_schema(driver, db)
        store.upsert_analyses(driver, db, docs[:10], relation_labels=labels)  # warm-up: plans cached
        store.clear_database(driver, db)
        for _ in range(args.warm_rounds):
            store.upsert_analyses(driver, db, docs[: args.docs], relation_labels=labels, max_rows=args.max_rows)
            store.clear_database(driver, db)
        TransactionBase.run = counting_run  # type: ignore[method-assign]
        TransactionBase._commit = timed_commit  # type: ignore[method-assign]
        t0 = time.perf_counter()
        from pipeline.gc_pause import paused_cyclic_gc
        from pipeline.store.rows import (
            evidence_rows,
            fact_evidence_rows,
            facts_new_rows,
            mention_rows,
            relates_new_rows,
            rows_from_analysis,
            span_rows,
        )

        with paused_cyclic_gc():  # as the store builds them (pipeline.gc_pause)
            built = [rows_from_analysis(a) for a in docs[: args.docs]]
            span_rows([(r, i) for i, r in enumerate(built)]), relates_new_rows(built), facts_new_rows(built)
            for r in built:
                mention_rows(r), evidence_rows(r), fact_evidence_rows(r)
        t_rows = time.perf_counter() - t0
        recording = gc_log.with_name("upsert.jfr")
        if args.jfr:
            assert server.process is not None
            jcmd = ["jcmd", str(server.process.pid)]
            subprocess.run([*jcmd, "JFR.start", "name=qkgraph", "settings=profile"], check=True, capture_output=True)
        gc_before = gc_pauses(gc_log)
        jvm_before, cpu_before = jvm_cpu_s(server), time.process_time()
        t0 = time.perf_counter()
        result = store.upsert_analyses(driver, db, docs[: args.docs], relation_labels=labels, max_rows=args.max_rows)
        wall = time.perf_counter() - t0
        jvm_cpu, client_cpu = jvm_cpu_s(server) - jvm_before, time.process_time() - cpu_before
        gc_n, gc_ms = (a - b for a, b in zip(gc_pauses(gc_log), gc_before, strict=True))
        if args.jfr:
            subprocess.run(
                [*jcmd, "JFR.stop", "name=qkgraph", f"filename={recording}"], check=True, capture_output=True
            )
        TransactionBase.run = real_run  # type: ignore[method-assign]
        TransactionBase._commit = real_commit  # type: ignore[method-assign]
        rels = driver.execute_query("MATCH ()-[r]->() RETURN count(r) AS n", database_=db).records[0]["n"]
        calls = sum(int(v[0]) for v in stats.values())
        print(f"load average {os.getloadavg()}")
        corpus = "synthetic" if args.synthetic else "EWT"
        print(f"{args.docs} {corpus} docs {result}: {wall:.2f} s wall, {rels} relationships, {rels / wall:.0f} rels/s")
        print(
            f"CPU over the upsert: client {client_cpu:.2f} s, server JVM {jvm_cpu:.2f} s; GC pauses {gc_n}, {gc_ms / 1000:.2f} s"
        )
        print(f"statements: {calls} ({calls / args.docs:.1f} round trips per document)")
        print(f"statement time (send + server + receive, summed): {server_ms[0] / 1000:.2f} s")
        print(f"client-side rows (validate + pack lists, no driver): {t_rows:.2f} s")
        print(f"commits: {int(commit_ms[1])}, {commit_ms[0] / 1000:.2f} s")
        rest = wall - server_ms[0] / 1000 - t_rows - commit_ms[0] / 1000
        print(f"rest (driver, Python between statements): {rest:.2f} s")
        server = sum(v[2] for v in stats.values()) / 1000
        print(f"  of which the server reports (t_first + t_last): {server:.2f} s")
        print(f"  {'statement':22s} {'calls':>6s}       {'round trip':>10s}  {'server':>7s}")
        for name, (n, ms, srv) in sorted(stats.items(), key=lambda kv: -kv[1][1]):
            print(f"  {name:22s} {int(n):6d} calls {ms / 1000:9.2f} s {srv / 1000:7.2f} s")
        driver.close()
    if args.jfr:
        print_jfr_breakdown(recording)


if __name__ == "__main__":
    main()
