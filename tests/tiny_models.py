"""Tiny random-weight models of each supported family, for architecture tests (float64, seeded)."""

from __future__ import annotations

import torch
from transformers import (
    AutoModel,
    BertConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    Qwen2Config,
)

VOCAB = 101


def _randomise_biases(model: torch.nn.Module, gen: torch.Generator) -> None:
    # Freshly initialised biases are zero; make them non-zero so the bias terms are really tested.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


def tiny(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    if family == "bert":
        cfg = BertConfig(**common, max_position_embeddings=64)
    elif family == "gpt2":
        cfg = GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            scale_attn_by_inverse_layer_idx=True,
            bos_token_id=None,
            eos_token_id=None,
        )
    elif family == "llama":
        cfg = LlamaConfig(**common, num_key_value_heads=2, max_position_embeddings=64, rope_theta=100.0)
    elif family == "qwen2":
        cfg = Qwen2Config(**common, num_key_value_heads=2, max_position_embeddings=64)
    elif family == "gpt_neox":
        cfg = GPTNeoXConfig(**common, max_position_embeddings=64, rotary_pct=0.5, attention_bias=True)
    else:
        raise ValueError(family)
    model = AutoModel.from_config(cfg, attn_implementation="eager").double().eval()
    _randomise_biases(model, torch.Generator().manual_seed(1))
    # Larger weights than the init default, so attention is far from uniform.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "emb" not in name:
                p.mul_(3.0)
    return model
