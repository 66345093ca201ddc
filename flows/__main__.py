"""``python -m flows [SOURCES...]``: run the ingest flow once (in-process, or on Dask)."""

from __future__ import annotations

import argparse
import json

from flows.scale_out import run_flow_once
from pipeline.ingest.settings import DEFAULT_BATCH_CHARS


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows", description="Run the qkgraph ingest flow once.")
    parser.add_argument("sources", nargs="*", default=["examples"])
    parser.add_argument("--out", default=None)
    parser.add_argument("--html", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-chars", type=int, default=DEFAULT_BATCH_CHARS)
    parser.add_argument("--dask-workers", type=int, default=0, help="run extraction on a LocalCluster of N workers")
    parser.add_argument("--dask-address", default=None, help="run extraction on this Dask scheduler")
    args = parser.parse_args()
    report = run_flow_once(
        sources=args.sources,
        out=args.out,
        html=args.html,
        batch_size=args.batch_size,
        batch_chars=args.batch_chars,
        dask_address=args.dask_address,
        dask_workers=args.dask_workers,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
