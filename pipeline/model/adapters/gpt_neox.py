"""GPT-NeoX / Pythia: pre-LN decoder, fused ``query_key_value`` Linear laid out per head as
[q_h | k_h | v_h] blocks of d_head rows, partial rotary embeddings on the first rotary_ndims dims."""

from __future__ import annotations

from typing import Any

from torch import nn

from pipeline.model.adapters.base import AttentionAdapter, LayerQK


class GPTNeoXAdapter(AttentionAdapter):
    family = "gpt_neox"
    model_types = ("gpt_neox",)
    causal = True
    positional = "rotary"

    @property
    def rotary_dim(self) -> int:
        attention: Any = self.attention_module(0)
        return int(attention.rotary_ndims)

    def attention_module(self, layer: int) -> nn.Module:
        return self.base.layers[layer].attention

    def qk_input_module(self, layer: int) -> nn.Module:
        return self.base.layers[layer].attention.query_key_value

    def rotary_module(self) -> nn.Module | None:
        return self.base.rotary_emb

    def layer_qk(self, layer: int) -> LayerQK:
        qkv: Any = self.attention_module(layer).query_key_value
        n, dh, d = self.n_heads, self.d_head, self.d_model
        # Output rows are grouped per head: head h owns rows [h*3*dh, (h+1)*3*dh) = q | k | v.
        w = qkv.weight.detach().reshape(n, 3, dh, d)
        w_q = w[:, 0].transpose(1, 2).contiguous()
        w_k = w[:, 1].transpose(1, 2).contiguous()
        if qkv.bias is not None:
            b = qkv.bias.detach().reshape(n, 3, dh)
            b_q, b_k = b[:, 0].clone(), b[:, 1].clone()
        else:
            b_q = w_q.new_zeros(n, dh)
            b_k = w_k.new_zeros(n, dh)
        return LayerQK(w_q, b_q, w_k, b_k)
