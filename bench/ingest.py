"""End-to-end ingest of EWT dev documents against spaCy alone plus the full-depth bare model forward.

Measured in one run, on the same texts, sides interleaved (reference, ingest, reference, ingest, ...),
best of ``--repeats``:
  * reference = spaCy + forward:
      - spaCy: nlp.pipe over the documents (parse only);
      - forward: the bare model, every layer, over the windows the pipeline scores (typed mode: one
        sentence per window, with the decoder's prefix token), tokenized beforehand, in the batches
        the pipeline makes of them (grouped by length within the look-ahead, cut by the token budget);
  * ingest: documents -> spaCy -> windows -> relations and facts -> KnowledgeGraph (files not written),
    with where its time goes: forward (the model, stopped after the deepest layer needed), scoring
    (typed relation scores on the captured residuals), graph (KnowledgeGraph.add_analysis) and the
    rest (spaCy, tokenization, windows, facts).

ratio_full_forward = ingest / (spaCy + forward); ratio_cpu the same in this process's CPU time (best of
``--repeats`` per side; with ``--threads 1`` less sensitive to other load on a shared machine than wall
time); ratio_doc_order = the same against a forward batched
as the pipeline used to batch (16 windows in document order, padded to the longest), for comparison
with figures measured before length grouping. Peak RSS of the streaming pipeline (analyses discarded
as they come, as a server run does after upserting) is measured in child processes for 1x and
``--copies`` x the corpus; rss_ratio_10x near 1 means memory stays flat as the corpus grows.

    .venv/bin/python bench/ingest.py [--copies 10] [--repeats 3] [--threads 1]
    .venv/bin/python bench/ingest.py --model smollm2 --documents 40 --copies 10
Ends with one JSON line: ratio_full_forward, rss_ratio_10x, ratio_doc_order, ratio_cpu, seconds per part.
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


def _documents(copies: int = 1, limit: int | None = None):
    from pipeline.text.sources import load_documents
    from pipeline.types import Document

    docs, _ = load_documents([EWT])
    docs = docs[:limit] if limit else docs
    for c in range(copies):
        for d in docs:
            yield d if c == 0 else Document(f"{d.id}#copy{c}", d.text, d.source)


def _settings(model: str | None):
    from pipeline.ingest import IngestSettings

    return IngestSettings() if model is None else IngestSettings(model=model)


def stream_only(copies: int, model: str | None, limit: int | None, threads: int | None) -> None:
    """Child process: stream the corpus through the pipeline, keep nothing, print peak RSS (KiB)."""
    import torch

    from pipeline.ingest import analyze_documents, load_models

    if threads:
        torch.set_num_threads(threads)
    models = load_models(_settings(model))
    n = sum(1 for _ in analyze_documents(_documents(copies, limit), models))
    print(json.dumps({"docs": n, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


class _Timer:
    """Wall time spent inside a function (patched in place; calls are few and coarse)."""

    def __init__(self, owner, name: str) -> None:
        self.owner, self.name, self.seconds = owner, name, 0.0
        self.inner = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return self.inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        setattr(owner, name, timed)


def _reference_batches(models, docs, sentences, rex):
    """The pipeline's windows of each document, tokenized as it tokenizes them, in its batches:
    (length-grouped batches, document-order batches of 16)."""
    from pipeline.relations import make_windows

    tok = models.extractor.tokenizer
    typed = bool(rex.typed)
    prefix = rex.prefix
    rows: list[list[int]] = []
    grouped: list[list[list[int]]] = []
    chunk: list[list[int]] = []
    queued = 0
    for i, (d, sents) in enumerate(zip(docs, sentences)):
        windows, _ = make_windows(
            tok,
            d.text,
            sents,
            i,
            rex.max_tokens,
            rex.overlap,
            max_sentences=1 if typed else None,
            reserved=1 if prefix is not None else 0,
        )
        for w in windows:
            limit = rex.max_tokens - (1 if prefix is not None else 0)
            ids = list(tok(d.text[w.start : w.end], truncation=True, max_length=limit)["input_ids"])
            ids = ([prefix] if prefix is not None else []) + ids
            rows.append(ids)
            chunk.append(ids)
            queued += len(ids)
        if queued >= rex.lookahead_tokens:
            grouped += [[chunk[k] for k in b] for b in rex.batches([len(r) for r in chunk])]
            chunk, queued = [], 0
    grouped += [[chunk[k] for k in b] for b in rex.batches([len(r) for r in chunk])]
    doc_order = [rows[i : i + 16] for i in range(0, len(rows), 16)]
    return grouped, doc_order


def _forward(model, batches) -> tuple[float, float]:
    """(wall, CPU) seconds of the bare forward over these batches."""
    import torch

    from pipeline.relations.words import pad_rows

    padded = [pad_rows(b) for b in batches]
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for ids, mask in padded:
            model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the packaged default); e.g. smollm2")
    parser.add_argument("--documents", type=int, default=None, help="the first N EWT dev documents (default all)")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--no-rss", action="store_true", help="skip the 1x / Nx peak-RSS children")
    parser.add_argument("--stream-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_only is not None:
        stream_only(args.stream_only, args.model, args.documents, args.threads)
        return

    import torch

    import pipeline.model.activations as activations
    import pipeline.relations.extract as extract
    from pipeline.graph import KnowledgeGraph
    from pipeline.ingest import analyze_documents, load_models
    from pipeline.relations import RelationExtractor, RelationStats

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    settings = _settings(args.model)
    models = load_models(settings)
    docs = list(_documents(1, args.documents))
    s = models.settings
    rex = RelationExtractor(
        models.extractor, models.subspaces, s.threshold, s.max_tokens, s.overlap, batch_tokens=s.batch_tokens
    )
    sentences = [[(x.start_char, x.end_char) for x in doc.sents] for doc in models.nlp.pipe(d.text for d in docs)]
    grouped, doc_order = _reference_batches(models, docs, sentences, rex)
    model = models.extractor.model
    _forward(model, grouped[:2])  # warm-up

    capture = _Timer(activations, "capture")
    scoring = _Timer(extract, "score_batch")
    best: dict[str, float] = {}
    parts: dict[str, float] = {}
    stats = RelationStats()
    summary: dict = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for _ in range(args.repeats):
        # reference side
        t0, c0 = time.perf_counter(), time.process_time()
        for _doc in models.nlp.pipe((d.text for d in docs), batch_size=16):
            pass
        keep("spacy", time.perf_counter() - t0)
        keep("spacy_cpu", time.process_time() - c0)
        wall, cpu = _forward(model, grouped)
        keep("forward", wall)
        keep("forward_cpu", cpu)
        keep("forward_doc_order", _forward(model, doc_order)[0])
        # ingest side
        capture.seconds = scoring.seconds = 0.0
        graph_s = 0.0
        kg = KnowledgeGraph()
        stats = RelationStats()
        t0, c0 = time.perf_counter(), time.process_time()
        for analysis in analyze_documents(docs, models, stats):
            g0 = time.perf_counter()
            kg.add_analysis(analysis)
            graph_s += time.perf_counter() - g0
        total = time.perf_counter() - t0
        keep("ingest_cpu", time.process_time() - c0)
        if total < best.get("ingest", float("inf")):
            parts = {
                "forward": capture.seconds,
                "scoring": scoring.seconds - capture.seconds,
                "graph": graph_s,
                "rest": total - scoring.seconds - graph_s,
            }
        keep("ingest", total)
        summary = kg.summary()
    load_end = os.getloadavg()

    rss: dict[int, int] = {}
    if not args.no_rss:
        extra = (["--model", args.model] if args.model else []) + (
            ["--documents", str(args.documents)] if args.documents else []
        )
        extra += ["--threads", str(args.threads)] if args.threads else []
        for copies in (1, args.copies):
            out = subprocess.run(
                [sys.executable, __file__, "--stream-only", str(copies), *extra],
                capture_output=True,
                text=True,
                check=True,
            )
            rss[copies] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_kib"]
    load_rss = os.getloadavg()

    ingest, spacy, forward, forward_doc = best["ingest"], best["spacy"], best["forward"], best["forward_doc_order"]
    ratio = ingest / (spacy + forward)
    ratio_doc = ingest / (spacy + forward_doc)
    ratio_cpu = best["ingest_cpu"] / (best["spacy_cpu"] + best["forward_cpu"])
    n_layers = models.extractor.adapter.n_layers
    deepest = max([t.layer for t in models.subspaces] + [getattr(t, "gate_layer", t.layer) for t in models.subspaces])
    print(
        f"corpus: {len(docs)} EWT dev documents, {stats.tokens} subword tokens ({stats.padded_tokens} padded), "
        f"{stats.windows} windows, {len(models.subspaces)} relation types; model {s.model} ({n_layers} layers, "
        f"forward stops after layer {deepest - 1}: {deepest} run); batch_tokens {s.batch_tokens}; "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    print(
        f"load average (1, 5, 15 min): start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"after timing {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}"
    )
    print(f"best of {args.repeats}, sides interleaved:")
    print(f"  spaCy parse alone             : {spacy:7.2f} s")
    print(
        f"  full-depth forward (grouped)  : {forward:7.2f} s  ({sum(len(b) * max(map(len, b)) for b in grouped)} padded tokens)"
    )
    print(
        f"  full-depth forward (doc order): {forward_doc:7.2f} s  ({sum(len(b) * max(map(len, b)) for b in doc_order)} padded tokens)"
    )
    print(
        f"  end-to-end ingest             : {ingest:7.2f} s  ({len(docs) / ingest:.1f} docs/s, "
        f"{stats.tokens / ingest:.0f} tokens/s)"
    )
    print(
        "    of which: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()) + " (rest: spaCy, tokenization, facts)"
    )
    print(f"ratio_full_forward ingest/(spaCy + forward): {ratio:.3f}   (against doc-order batches: {ratio_doc:.3f})")
    print(
        f"in CPU time (this process, less sensitive to other load on the machine): ingest {best['ingest_cpu']:.2f} s, "
        f"spaCy {best['spacy_cpu']:.2f} s + forward {best['forward_cpu']:.2f} s; ratio_cpu {ratio_cpu:.3f}"
    )
    print(
        f"graph: {summary['nodes']} nodes, {summary['edges']} edges, {stats.relations} relation evidences, {stats.facts} facts"
    )
    if rss:
        print(
            f"peak RSS streaming 1x: {rss[1] / 1024:.0f} MiB, {args.copies}x: {rss[args.copies] / 1024:.0f} MiB "
            f"(ratio {rss[args.copies] / rss[1]:.2f}); load average after: {load_rss[0]:.2f}"
        )
    print(
        json.dumps(
            {
                "model": s.model,
                "documents": len(docs),
                "ratio_full_forward": round(ratio, 3),
                "rss_ratio_10x": round(rss[args.copies] / rss[1], 3) if rss else None,
                "ratio_doc_order": round(ratio_doc, 3),
                "ratio_cpu": round(ratio_cpu, 3),
                "docs_per_s": round(len(docs) / ingest, 2),
                "spacy_s": round(spacy, 2),
                "forward_s": round(forward, 2),
                "forward_doc_order_s": round(forward_doc, 2),
                "ingest_s": round(ingest, 2),
                "ingest_parts_s": {k: round(v, 2) for k, v in parts.items()},
                "layers_run": deepest,
                "n_layers": n_layers,
                "tokens": stats.tokens,
                "padded_tokens": stats.padded_tokens,
                "threads": torch.get_num_threads(),
                "load_avg": [round(x, 2) for x in (*load_start, *load_end)],
                "nodes": summary["nodes"],
                "edges": summary["edges"],
            }
        )
    )


if __name__ == "__main__":
    main()
