"""Reconstruction error of the model's own pre-softmax logits from relational-subspace components.

For every layer and head: the sum of all components plus the bias terms (pipeline.extractor
decompose_logits), against the logits the model itself computed (captured inside its attention).
Tiny random configs run in float64; the default model (and SmolLM2 with --smollm2) in float32.
Ends with one JSON line {architecture: max_abs_error}.

    .venv/bin/python bench/exactness.py [--smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch

from pipeline.model.activations import capture
from pipeline.model.extractor import KnowledgeGraphExtractor

SENTENCES = ["Marie Curie founded the Radium Institute in Paris.", "The train to Glasgow was delayed."]


def max_error(ex: KnowledgeGraphExtractor, ids: torch.Tensor, mask: torch.Tensor) -> float:
    acts = capture(ex.adapter, ids, mask, logits=True)
    worst = 0.0
    for layer in range(ex.adapter.n_layers):
        for head in range(ex.adapter.n_heads):
            terms, bias = ex.decompose_logits(acts, layer, head)
            worst = max(worst, float((terms.sum(0) + bias - acts.logits[layer][:, head]).abs().max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smollm2", action="store_true")
    args = parser.parse_args()
    from tiny_models import VOCAB, tiny

    results: dict[str, float] = {}
    gen = torch.Generator().manual_seed(0)
    for family in ("bert", "gpt2", "llama", "qwen2", "gpt_neox"):
        ex = KnowledgeGraphExtractor(tiny(family))
        ids = torch.randint(0, VOCAB, (2, 16), generator=gen)
        results[f"tiny-{family} (fp64)"] = max_error(ex, ids, torch.ones_like(ids))
    from pipeline.model.adapters import load_model

    names = ["all-minilm-l6-v2"] + (["smollm2"] if args.smollm2 else [])
    for name in names:
        lm = load_model(name)
        if lm.tokenizer.pad_token is None:
            lm.tokenizer.pad_token = lm.tokenizer.eos_token
        enc = lm.tokenizer(SENTENCES, return_tensors="pt", padding=True)
        results[f"{name} (fp32)"] = max_error(
            KnowledgeGraphExtractor(lm.model, lm.tokenizer), enc["input_ids"], enc["attention_mask"]
        )
    for k, v in results.items():
        print(f"{k:28s} max |sum of components + bias - model logit| = {v:.2e}")
    print(json.dumps({k: float(f"{v:.3e}") for k, v in results.items()}))


if __name__ == "__main__":
    main()
