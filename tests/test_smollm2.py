"""SmolLM2-135M (LLaMA-type, GQA + RoPE) from its GGUF package: exactness on a real causal model."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from pipeline.model.adapters import load_model

    return load_model("smollm2")


def test_smollm2_layout_and_exact_logits(smollm2):
    from pipeline.model.activations import capture
    from pipeline.model.extractor import KnowledgeGraphExtractor

    ex = KnowledgeGraphExtractor(smollm2.model, smollm2.tokenizer)
    info = ex.adapter.describe()
    assert info["family"] == "llama" and info["n_kv_heads"] < info["n_heads"] and info["positional"] == "rotary"
    enc = smollm2.tokenizer(["Marie Curie founded the Radium Institute in Paris."], return_tensors="pt")
    layers = [0, ex.adapter.n_layers // 2, ex.adapter.n_layers - 1]
    acts = capture(ex.adapter, enc["input_ids"], enc["attention_mask"], layers=layers, logits=True)
    worst = 0.0
    for layer in layers:
        full = [ex.subspace(layer, h, list(range(ex.adapter.d_head))) for h in range(ex.adapter.n_heads)]
        ours = ex.subspace_logits(acts, full).transpose(0, 1)
        worst = max(worst, (ours - acts.logits[layer]).abs().max().item())
    assert worst <= 1e-4, worst
    subs = ex.extract_relational_subspaces(layers[1], top_k=3)
    rels = ex.identify_relation_types(enc["input_ids"], subs, threshold=0.5)
    assert all(r.key < r.query for r in rels)  # causal: a token only relates to earlier tokens
