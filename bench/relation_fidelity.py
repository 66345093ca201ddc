"""Relation fidelity of QK circuits on UD English EWT dev (Clark et al. 2019's protocol).

Runs ``pipeline.evaluation.run_evaluation`` on the whole dev split for the default model (and for
SmolLM2 with ``--smollm2``), prints the markdown tables, and ends with ONE line of JSON:
{"models": {name: report.to_json() minus the sweep}, "runtime_s": ...}.

    .venv/bin/python bench/relation_fidelity.py [--smollm2] [--plots DIR] [--max-sentences N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EWT_DEV = ROOT.parent / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--smollm2", action="store_true", help="also evaluate SmolLM2-135M (slow: ~1 min to load, many heads)"
    )
    ap.add_argument("--conllu", default=str(EWT_DEV))
    ap.add_argument("--plots", metavar="DIR")
    ap.add_argument("--max-sentences", type=int)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from pipeline.evaluation import run_evaluation

    torch.set_num_threads(max(1, args.threads))
    models = ["all-minilm-l6-v2"] + (["smollm2"] if args.smollm2 else [])
    t0 = time.time()
    out = {}
    for name in models:
        report = run_evaluation(
            args.conllu, model=name, max_sentences=args.max_sentences, plots_dir=args.plots, quiet=False
        )
        print(report.to_markdown(), flush=True)
        print(flush=True)
        data = report.to_json()
        data.pop("sweep", None)
        out[name] = data
    print(json.dumps({"models": out, "runtime_s": round(time.time() - t0, 1)}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
