"""LLaMA-like decoders (LLaMA, Mistral, Qwen2): RMSNorm before attention, separate q/k projections,
grouped-query attention, rotary position embeddings on the whole head (Qwen2 adds q/k biases)."""

from __future__ import annotations

from typing import Any

from torch import nn

from pipeline.model.adapters.base import AttentionAdapter, LayerQK, split_linear


class LlamaAdapter(AttentionAdapter):
    family = "llama"
    model_types = ("llama", "mistral", "qwen2")
    causal = True
    positional = "rotary"

    @property
    def n_kv_heads(self) -> int:
        return int(getattr(self.config, "num_key_value_heads", None) or self.n_heads)

    @property
    def d_head(self) -> int:
        return int(getattr(self.config, "head_dim", None) or self.d_model // self.n_heads)

    @property
    def rotary_dim(self) -> int:
        return self.d_head

    def attention_module(self, layer: int) -> nn.Module:
        return self.base.layers[layer].self_attn

    def qk_input_module(self, layer: int) -> nn.Module:
        return self.base.layers[layer].self_attn.q_proj

    def rotary_module(self) -> nn.Module | None:
        return self.base.rotary_emb

    def layer_qk(self, layer: int) -> LayerQK:
        att: Any = self.attention_module(layer)
        w_q, b_q = split_linear(att.q_proj.weight, att.q_proj.bias, self.n_heads, self.d_head)
        w_k, b_k = split_linear(att.k_proj.weight, att.k_proj.bias, self.n_kv_heads, self.d_head)
        return LayerQK(w_q, b_q, w_k, b_k)
