"""GPT-2: pre-LN decoder, fused Conv1D ``c_attn`` with weight [d_model, 3*d_model] (input-major)."""

from __future__ import annotations

from torch import nn

from pipeline.model.adapters.base import AttentionAdapter, LayerQK


class GPT2Adapter(AttentionAdapter):
    family = "gpt2"
    model_types = ("gpt2",)
    causal = True
    positional = "absolute"

    def attention_module(self, layer: int) -> nn.Module:
        return self.base.h[layer].attn

    def qk_input_module(self, layer: int) -> nn.Module:
        return self.base.h[layer].attn.c_attn

    def layer_qk(self, layer: int) -> LayerQK:
        c_attn = self.base.h[layer].attn.c_attn
        # Conv1D stores weight as [in, out] = [d_model, 3*d_model]; columns are q | k | v, each split
        # into heads of d_head consecutive columns.
        w = c_attn.weight.detach()
        b = c_attn.bias.detach()
        d, n, dh = self.d_model, self.n_heads, self.d_head
        w_q = w[:, :d].reshape(d, n, dh).permute(1, 0, 2).contiguous()
        w_k = w[:, d : 2 * d].reshape(d, n, dh).permute(1, 0, 2).contiguous()
        b_q = b[:d].reshape(n, dh).clone()
        b_k = b[d : 2 * d].reshape(n, dh).clone()
        return LayerQK(w_q, b_q, w_k, b_k)
