"""The seed's example, verbatim except for the imports and a small config."""

from __future__ import annotations

import pytest
import torch

from pipeline import BaseInterpretabilityBench, HookedAutoConfig, HookedAutoModel
from pipeline.errors import ModelTooLargeError, QkgraphError


def test_seed_example_runs():
    torch.manual_seed(0)
    config = HookedAutoConfig(
        name="llama",
        vocab_size=50257,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = HookedAutoModel(config)

    input_ids = torch.randint(0, 50256, (1, 50))  # generate some random tokens(replace with your ids)

    # Derive from BaseInterpretabilityBench
    class MIExperiment(BaseInterpretabilityBench):
        def __init__(self, model, save_dir="experiments"):
            super().__init__(model, save_dir)

    exp = MIExperiment(model)  # create an `exp` object.

    @exp.use_tools("kg_extractor")  # the tool name to be used
    def test_kg_extractor(token_ids, kg_extractor):  # # same as tool name, one extra arg is passed.
        top_subspaces = kg_extractor.extract_relational_subspaces(0)
        irt = kg_extractor.identify_relation_types(token_ids, top_subspaces)
        return {"top_subspaces": top_subspaces, "identify_relation_types": irt}

    # Driver code, call the function based on whatever arguments you want!
    result = test_kg_extractor(input_ids)  # one such example. Change as needed!

    subs = result["top_subspaces"]
    assert len(subs) == 3 and all(s.layer == 0 for s in subs)
    assert len({s.head for s in subs}) == 3
    for r in result["identify_relation_types"]:
        assert r.score >= 0.7 and r.relation in {s.id for s in subs}
    logits, acts = model(input_ids)
    assert logits.shape == (1, 50, 50257) and len(acts) == 3


@pytest.mark.parametrize("name", ["gpt2", "gpt-neox", "qwen2", "mistral"])
def test_supported_seed_names_give_an_extractor(name):
    sizes = dict(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    if name != "gpt2" and name != "gpt-neox":
        sizes.update(intermediate_size=64, num_key_value_heads=2)
    model = HookedAutoModel(HookedAutoConfig(name=name, **sizes))
    bench = BaseInterpretabilityBench(model)

    @bench.use_tools("kg_extractor")
    def run(ids, kg_extractor):
        return kg_extractor.extract_relational_subspaces(0, top_k=2)

    assert len(run(torch.arange(10)[None])) == 2


def test_default_llama_config_is_refused_up_front():
    with pytest.raises(ModelTooLargeError) as err:
        HookedAutoModel(HookedAutoConfig(name="llama"))
    assert "6.74B parameters" in str(err.value)


def test_other_seed_tools_are_out_of_scope_with_a_clear_error():
    model = HookedAutoModel(HookedAutoConfig(name="gpt2", vocab_size=100, n_embd=16, n_layer=1, n_head=2))
    bench = BaseInterpretabilityBench(model)
    with pytest.raises(QkgraphError) as err:
        bench.use_tools("causal")
    assert "out of scope" in str(err.value) and "kg_extractor" in str(err.value)
    with pytest.raises(ValueError):
        HookedAutoConfig(name="bloom")


@pytest.mark.parametrize("name", ["gpt-neo", "gemma", "phi3", "stable-lm"])
def test_seed_names_without_an_adapter_are_refused_up_front(name):
    from pipeline.errors import UnsupportedArchitectureError

    with pytest.raises(UnsupportedArchitectureError) as err:
        HookedAutoConfig(name=name)
    assert name in str(err.value) and "llama" in str(err.value) and "gpt2" in str(err.value)
