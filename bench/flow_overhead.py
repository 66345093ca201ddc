"""What the Prefect flow costs over calling the library directly, and what 2 Dask workers gain.

On the first N documents of UD English EWT dev (default 100 of 318), default extractor settings,
files only (no Neo4j), models loaded before any timing:

  * library: analyze_documents -> KnowledgeGraph -> node-link JSON, in this process, on the same
    batches of --batch-size documents as the flow and in a worker thread as the flow's tasks run:
    the same work without Prefect. Both matter on the 2-core machine of the report: one stream of all
    100 documents took ~25% longer than batches of 8 (a property of analyze_documents, printed once
    as a reference), and torch ran ~30% faster off the main thread;
  * flow: ingest_flow (default thread runner) on the same documents, empty analysis cache
    (so it includes persisting every analysis), on a Prefect server;
    ratio = flow / library, best of --rounds alternated runs each (wall clock; the CPU time of
    this process is printed too, as it suffers less from other load on a shared machine);
  * flow, second run: every document a cache hit;
  * Dask: the flow on a LocalCluster of 2 worker processes x 1 thread, already started and with the
    model already loaded in each worker (startup measured separately), empty cache;
    dask_speedup = flow / Dask (same batch size). The single-process runs use torch's default
    threads (all cores); Dask workers use one thread each. On a 2-core machine a speedup near
    1-1.5 is what to expect: the two workers share the same two cores that one process already used.

The flow reports to the Prefect server at PREFECT_API_URL, or to a throwaway test server started
here (not timed). Graphs are compared: the flow's has the library's nodes, edges and evidence;
scores may differ in the last float bits, because the library streams all documents through shared
padded window batches while the flow's batches hold --batch-size documents (the largest difference
is printed). The Dask run uses the same batches as the single-process flow and must match it exactly.

    .venv/bin/python bench/flow_overhead.py [--docs 100] [--batch-size 8] [--no-dask]
Ends with one JSON line: ratio, dask_speedup and the raw figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
if not os.environ.get("PREFECT_API_URL"):
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="qkgraph-bench-prefect-")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EWT = ROOT.parent / "shared/data/ud_english_ewt/en_ewt-ud-dev.conllu"


def compare(a, b) -> tuple[bool, float]:
    """(same nodes, edges and every non-score attribute; largest score difference) of two graphs.

    Scores can differ in the last float bits when documents share forward passes with different
    neighbours (the padded window batches differ), so structure and scores are reported apart.
    """
    import networkx as nx

    da = nx.node_link_data(a.canonical(), edges="edges")
    db = nx.node_link_data(b.canonical(), edges="edges")
    if da["nodes"] != db["nodes"] or a.documents != b.documents or len(da["edges"]) != len(db["edges"]):
        return False, float("nan")
    worst = 0.0
    scored = ("score_max", "score_mean")
    for x, y in zip(da["edges"], db["edges"]):
        if {k: v for k, v in x.items() if k not in scored + ("evidence",)} != {
            k: v for k, v in y.items() if k not in scored + ("evidence",)
        }:
            return False, float("nan")
        if [{k: v for k, v in e.items() if k != "score"} for e in x["evidence"]] != [
            {k: v for k, v in e.items() if k != "score"} for e in y["evidence"]
        ]:
            return False, float("nan")
        worst = max([worst] + [abs(x[k] - y[k]) for k in scored])
        worst = max([worst] + [abs(e["score"] - f["score"]) for e, f in zip(x["evidence"], y["evidence"])])
    return True, worst


def dump(kg) -> dict:
    import networkx as nx

    data = nx.node_link_data(kg.canonical(), edges="edges")
    return {"nodes": data["nodes"], "edges": data["edges"], "documents": kg.documents}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100, help="first N EWT dev documents (318 in all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="library/flow rounds, alternated; best of each")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.WARNING)

    import torch

    from flows.analysis import get_models
    from flows.ingest import ingest_flow
    from flows.scale_out import ingest_flow_on_dask
    from pipeline.graph import KnowledgeGraph
    from pipeline.ingest import IngestSettings, analyze_documents
    from pipeline.text.sources import load_documents

    work = Path(tempfile.mkdtemp(prefix="qkgraph-bench-flow-"))
    docs, _ = load_documents([EWT])
    docs = docs[: args.docs]
    corpus = work / "ewt-dev.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d.id, "text": d.text}, ensure_ascii=False) + "\n")
    chars = sum(len(d.text) for d in docs)
    print(
        f"{len(docs)} EWT dev documents, {chars} characters; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    )

    settings = IngestSettings()
    t = time.perf_counter()
    models = get_models(settings)
    print(f"model load (not timed below): {time.perf_counter() - t:.1f}s")
    reread, _ = load_documents([corpus])

    def library_here(batch: int) -> tuple[float, float, KnowledgeGraph]:
        t, c = time.perf_counter(), time.process_time()
        kg = KnowledgeGraph(relation_labels=models.relation_labels)
        for start in range(0, len(reread), batch):
            for analysis in analyze_documents(reread[start : start + batch], models):
                kg.add_analysis(analysis)
        kg.to_node_link(work / "library.json")
        return time.perf_counter() - t, time.process_time() - c, kg

    def library(batch: int = args.batch_size) -> tuple[float, float, KnowledgeGraph]:
        # In a worker thread, as the flow's tasks run (ThreadPoolTaskRunner): torch ran ~30% faster
        # off the main thread on the 2-core machine of the report, which is not the flow's doing.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(library_here, batch).result()

    harness = contextlib.nullcontext()
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.testing.utilities import prefect_test_harness

        harness = prefect_test_harness(server_startup_timeout=180)
    with harness:
        params = {"sources": [str(corpus)], "batch_size": args.batch_size}
        lib_runs, flow_runs = [], []
        wall, cpu, _ = library(len(reread))
        print(f"library, all documents in one stream (reference only): {wall:7.2f}s wall, {cpu:7.2f}s CPU")
        for r in range(args.rounds):  # alternate, so that a busy spell of the machine hits both
            wall, cpu, kg = library()
            lib_runs.append((wall, cpu))
            print(f"library   round {r + 1}: {wall:7.2f}s wall, {cpu:7.2f}s CPU ({len(docs) / wall:.2f} docs/s)")
            cache = work / f"cache-flow-{r}"
            t, c = time.perf_counter(), time.process_time()
            report = ingest_flow(out=str(work / "flow.json"), cache_dir=str(cache), fresh=True, **params)
            flow_runs.append((time.perf_counter() - t, time.process_time() - c))
            assert report["extracted"] == len(docs) and not report["failed"], report
            print(f"flow      round {r + 1}: {flow_runs[-1][0]:7.2f}s wall, {flow_runs[-1][1]:7.2f}s CPU")
        t_lib, c_lib = min(w for w, _ in lib_runs), min(c for _, c in lib_runs)
        t_flow, c_flow = min(w for w, _ in flow_runs), min(c for _, c in flow_runs)
        flow_kg = KnowledgeGraph.from_node_link(work / "flow.json")
        same, diff = compare(flow_kg, kg)
        print(
            f"best of {args.rounds}: library {t_lib:.2f}s, flow {t_flow:.2f}s: ratio {t_flow / t_lib:.3f} "
            f"(CPU of this process: {c_flow / c_lib:.3f}); flow graph vs library: same structure {same}, "
            f"largest score difference {diff:.2e}"
        )
        params_cached = {**params, "cache_dir": str(cache)}
        t = time.perf_counter()
        report = ingest_flow(out=str(work / "flow.json"), **params_cached)
        t_cached = time.perf_counter() - t
        assert report["extracted"] == 0 and report["cached"] == len(docs), report
        print(f"flow, all cache hits:   {t_cached:7.2f}s")

        result = {
            "docs": len(docs),
            "batch_size": args.batch_size,
            "library_s": round(t_lib, 3),
            "flow_s": round(t_flow, 3),
            "flow_cached_s": round(t_cached, 3),
            "ratio": round(t_flow / t_lib, 4),
            "cpu_ratio": round(c_flow / c_lib, 4),
            "rounds": args.rounds,
            "same_structure_as_library": same,
            "max_score_diff_vs_library": diff if same else None,
            "dask_speedup": None,
        }
        if not args.no_dask:
            from distributed import LocalCluster

            t = time.perf_counter()
            with LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                dask_flow = ingest_flow_on_dask(cluster.scheduler_address)
                # Warm-up: one batch per worker so that each loads the model (what a cold run pays extra).
                warm_docs = work / "warm.jsonl"
                warm_docs.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(True)[: 2 * args.workers]))
                warm = dask_flow(
                    sources=[str(warm_docs)],
                    out=str(work / "warm.json"),
                    cache_dir=str(work / "cache-warm"),
                    batch_size=1,
                )
                t_start = time.perf_counter() - t
                print(
                    f"Dask start + model load in {len(set(warm['extract_pids']))} of {args.workers} workers: {t_start:.2f}s"
                )

                t = time.perf_counter()
                report = dask_flow(out=str(work / "dask.json"), cache_dir=str(work / "cache-dask"), **params)
                t_dask = time.perf_counter() - t
            assert report["extracted"] == len(docs) and not report["failed"], report
            same_dask = dump(KnowledgeGraph.from_node_link(work / "dask.json")) == dump(flow_kg)
            print(
                f"flow on Dask ({args.workers} workers x 1 thread, warm): {t_dask:7.2f}s  speedup {t_flow / t_dask:.3f}"
                f"  (processes used {len(report['extract_pids'])}; graph identical to the single-process flow's: {same_dask})"
            )
            result.update(
                dask_s=round(t_dask, 3),
                dask_start_s=round(t_start, 3),
                dask_speedup=round(t_flow / t_dask, 4),
                dask_same_graph=same_dask,
                workers=args.workers,
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
