"""BERT-like encoders (BERT, the default all-MiniLM-L6-v2, RoBERTa): post-LN, absolute positions, biases."""

from __future__ import annotations

from typing import Any

from torch import nn

from pipeline.model.adapters.base import AttentionAdapter, LayerQK, split_linear


class BertAdapter(AttentionAdapter):
    family = "bert"
    model_types = ("bert", "roberta", "xlm-roberta")
    causal = False
    positional = "absolute"

    def _self_attention(self, layer: int) -> Any:
        return self.base.encoder.layer[layer].attention.self

    def attention_module(self, layer: int) -> nn.Module:
        return self._self_attention(layer)

    def qk_input_module(self, layer: int) -> nn.Module:
        return self._self_attention(layer).query

    def layer_qk(self, layer: int) -> LayerQK:
        att = self._self_attention(layer)
        w_q, b_q = split_linear(att.query.weight, att.query.bias, self.n_heads, self.d_head)
        w_k, b_k = split_linear(att.key.weight, att.key.bias, self.n_heads, self.d_head)
        return LayerQK(w_q, b_q, w_k, b_k)
