"""End-to-end ingest of the 318 EWT dev documents against spaCy alone plus the bare model forward alone.

Measured in one run, on the same texts:
  * spaCy: nlp.pipe over the documents (parse only);
  * forward: the bare default model over the same sentence windows the pipeline uses;
  * ingest: documents -> spans -> relations -> KnowledgeGraph (files not written).
ratio = ingest / (spaCy + forward). Peak RSS of the streaming pipeline (analyses discarded as they come,
as a server run does after upserting) is measured in child processes for 1x and 10x the corpus;
rss_ratio_10x near 1 means memory stays flat as the corpus grows.

    .venv/bin/python bench/ingest.py [--copies 10]
Ends with one JSON line: ratio, docs_per_s, rss_ratio_10x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EWT = Path(__file__).resolve().parents[1].parent / "shared/data/ud_english_ewt/en_ewt-ud-dev.conllu"


def _documents(copies: int = 1):
    from pipeline.text.sources import load_documents
    from pipeline.types import Document

    docs, _ = load_documents([EWT])
    for c in range(copies):
        for d in docs:
            yield d if c == 0 else Document(f"{d.id}#copy{c}", d.text, d.source)


def stream_only(copies: int) -> None:
    """Child process: stream the corpus through the pipeline, keep nothing, print peak RSS (KiB)."""
    from pipeline.ingest import IngestSettings, analyze_documents, load_models

    models = load_models(IngestSettings())
    n = sum(1 for _ in analyze_documents(_documents(copies), models))
    print(json.dumps({"docs": n, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--stream-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_only is not None:
        stream_only(args.stream_only)
        return

    import torch

    from pipeline.graph import KnowledgeGraph
    from pipeline.ingest import IngestSettings, analyze_documents, load_models
    from pipeline.relations import RelationStats, make_windows

    models = load_models(IngestSettings())
    docs = list(_documents())
    tok = models.extractor.tokenizer

    t0 = time.perf_counter()
    parsed = [
        (d, [(s.start_char, s.end_char) for s in doc.sents])
        for d, doc in zip(docs, models.nlp.pipe((d.text for d in docs), batch_size=16))
    ]
    t_spacy = time.perf_counter() - t0

    windows = [
        d.text[w.start : w.end]
        for i, (d, sents) in enumerate(parsed)
        for w in make_windows(tok, d.text, sents, i, 512)[0]
    ]
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(windows), 16):
            enc = tok(windows[i : i + 16], return_tensors="pt", padding=True, truncation=True, max_length=512)
            models.extractor.model(**enc)
    t_forward = time.perf_counter() - t0

    kg = KnowledgeGraph()
    stats = RelationStats()
    t0 = time.perf_counter()
    for analysis in analyze_documents(docs, models, stats):
        kg.add_analysis(analysis)
    t_ingest = time.perf_counter() - t0
    summary = kg.summary()

    rss = {}
    for copies in (1, args.copies):
        out = subprocess.run(
            [sys.executable, __file__, "--stream-only", str(copies)], capture_output=True, text=True, check=True
        )
        rss[copies] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_kib"]

    ratio = t_ingest / (t_spacy + t_forward)
    print(
        f"corpus: {len(docs)} EWT dev documents, {stats.tokens} subword tokens, {stats.windows} windows, "
        f"{len(models.subspaces)} relation types; torch threads {torch.get_num_threads()}"
    )
    print(f"spaCy parse alone      : {t_spacy:7.2f} s")
    print(f"bare model forward     : {t_forward:7.2f} s")
    print(
        f"end-to-end ingest      : {t_ingest:7.2f} s  ({len(docs) / t_ingest:.1f} docs/s, {stats.tokens / t_ingest:.0f} tokens/s)"
    )
    print(f"ratio ingest/(spaCy+forward): {ratio:.2f}")
    print(f"graph: {summary['nodes']} nodes, {summary['edges']} edges, {stats.relations} relation evidences")
    print(
        f"peak RSS streaming 1x: {rss[1] / 1024:.0f} MiB, {args.copies}x: {rss[args.copies] / 1024:.0f} MiB "
        f"(ratio {rss[args.copies] / rss[1]:.2f})"
    )
    print(
        json.dumps(
            {
                "ratio": round(ratio, 3),
                "docs_per_s": round(len(docs) / t_ingest, 2),
                "rss_ratio_10x": round(rss[args.copies] / rss[1], 3),
                "spacy_s": round(t_spacy, 2),
                "forward_s": round(t_forward, 2),
                "ingest_s": round(t_ingest, 2),
                "nodes": summary["nodes"],
                "edges": summary["edges"],
            }
        )
    )


if __name__ == "__main__":
    main()
