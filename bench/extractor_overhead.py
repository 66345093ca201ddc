"""Extractor wall time over a bare forward pass of the default model, on the same EWT dev sentences.

Bare: model(input_ids, attention_mask) in no-grad eval mode. Extractor: the same forward with the
residual hooks, then every layer's top-3 relational subspaces scored on every token pair and
thresholded at 0.7 (relation_scores + identify). Subspace ranking and SVDs are done once, before timing
(they are per model, not per batch). Ends with one JSON line: ratio = extractor time / bare forward time.

    .venv/bin/python bench/extractor_overhead.py [--sentences 512] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipeline.model.adapters import load_model
from pipeline.model.extractor import KnowledgeGraphExtractor
from pipeline.text.conllu import read_conllu

EWT = Path(__file__).resolve().parents[1].parent / "shared/data/ud_english_ewt/en_ewt-ud-dev.conllu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    lm = load_model()
    ex = KnowledgeGraphExtractor(lm.model, lm.tokenizer)
    subs = [s for layer in range(ex.adapter.n_layers) for s in ex.extract_relational_subspaces(layer, top_k=3)]
    texts = [s.text for _, s in zip(range(args.sentences), read_conllu(EWT))]
    batches = [
        lm.tokenizer(texts[i : i + args.batch], return_tensors="pt", padding=True, truncation=True)
        for i in range(0, len(texts), args.batch)
    ]
    n_tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    def bare() -> None:
        with torch.no_grad():
            for b in batches:
                lm.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])

    n_rel = 0

    def extract() -> None:
        nonlocal n_rel
        n_rel = 0
        for b in batches:
            n_rel += len(ex.identify_relation_types(b["input_ids"], subs, 0.7, attention_mask=b["attention_mask"]))

    def best(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    # interleave so both see the same machine state
    t_bare = best(bare)
    t_ex = best(extract)
    ratio = t_ex / t_bare
    print(
        f"{len(texts)} EWT dev sentences, {n_tokens} subword tokens, batch {args.batch}, "
        f"{len(subs)} subspaces (top-3 x {ex.adapter.n_layers} layers), torch threads {torch.get_num_threads()}"
    )
    print(f"bare forward      : {t_bare:7.3f} s  ({n_tokens / t_bare:8.0f} tokens/s)")
    print(f"extractor         : {t_ex:7.3f} s  ({n_tokens / t_ex:8.0f} tokens/s), {n_rel} relations at 0.7")
    print(f"ratio extractor/bare: {ratio:.2f}x")
    print(
        json.dumps(
            {
                "ratio": round(ratio, 3),
                "bare_s": round(t_bare, 4),
                "extractor_s": round(t_ex, 4),
                "tokens": n_tokens,
                "subspaces": len(subs),
                "relations": n_rel,
            }
        )
    )


if __name__ == "__main__":
    main()
