"""One batched, no-grad forward pass that records what the extractor needs from a model.

Recorded per requested layer: the normalised residual entering Q/K (the input of the Q projection,
captured by a forward pre-hook), RoPE's (cos, sin) for the batch's positions (forward hook on the
rotary module), and optionally the model's own pre-softmax attention logits (captured by a custom
attention function registered with transformers' AttentionInterface, which receives the model's
already-projected and already-rotated queries and keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline.model.adapters import AttentionAdapter

_CAPTURE_IMPL = "qkgraph_capture"
_active_logit_sink: dict[int, torch.Tensor] | None = None
_module_layer: dict[int, int] = {}


class _StopForward(Exception):
    """Raised by the hook of the last layer wanted, to end a forward pass early."""


@dataclass
class Activations:
    """What one forward pass recorded.

    Shapes:
        input_ids, attention_mask: [B, T]
        residuals[l]: [B, T, d_model]      normalised residual entering Q/K of layer l
        rotary: (cos, sin), each [B, T, rotary_dim], or None without RoPE
        logits[l]: [B, n_heads, T, T]      model's pre-softmax, pre-mask logits q.k*scale (if requested)
        attentions[l]: [B, n_heads, T, T]  model's attention probabilities (if requested)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    residuals: dict[int, torch.Tensor] = field(default_factory=dict)
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    logits: dict[int, torch.Tensor] = field(default_factory=dict)
    attentions: dict[int, torch.Tensor] = field(default_factory=dict)


def _capture_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention that also records q.k*scale (before the mask) for the module's layer."""
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:  # grouped-query attention: each key/value head serves n_rep query heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    layer = _module_layer.get(id(module))
    if _active_logit_sink is not None and layer is not None:
        _active_logit_sink[layer] = weights.detach().clone()
    if attention_mask is not None:
        mask = attention_mask[..., : key.shape[-2]]
        if mask.dtype == torch.bool:
            weights = weights.masked_fill(~mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + mask
    probs = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


def _register_capture() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(_CAPTURE_IMPL, _capture_attention)
    # An additive float mask, always materialised (never the is_causal shortcut), like eager.
    ALL_MASK_ATTENTION_FUNCTIONS.register(_CAPTURE_IMPL, eager_mask)


def _configs(model: nn.Module) -> Iterator[Any]:
    seen: set[int] = set()
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and id(cfg) not in seen and hasattr(cfg, "_attn_implementation"):
            seen.add(id(cfg))
            yield cfg


@contextmanager
def _attn_implementation(model: nn.Module, name: str) -> Iterator[None]:
    configs = list(_configs(model))
    previous = [cfg._attn_implementation for cfg in configs]
    try:
        for cfg in configs:
            cfg._attn_implementation = name
        yield
    finally:
        for cfg, prev in zip(configs, previous):
            cfg._attn_implementation = prev


def capture(
    adapter: AttentionAdapter,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
    logits: bool = False,
    attentions: bool = False,
    stop_early: bool = False,
) -> Activations:
    """Run the model once on [B, T] ids and record residuals (and optionally logits/attentions).

    ``stop_early`` (residuals only): the forward pass stops once the last requested layer's residual
    is recorded, so the layers above it are never computed."""
    global _active_logit_sink
    model = adapter.model
    layers = sorted(set(range(adapter.n_layers) if layers is None else layers))
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    acts = Activations(input_ids=input_ids, attention_mask=attention_mask)
    handles = []

    last = layers[-1] if layers else None
    stop = stop_early and not logits and not attentions

    def pre_hook(layer: int):
        def hook(_module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            acts.residuals[layer] = x.detach()
            if stop and layer == last:
                raise _StopForward

        return hook

    for layer in layers:
        handles.append(adapter.qk_input_module(layer).register_forward_pre_hook(pre_hook(layer), with_kwargs=True))
    rotary = adapter.rotary_module()
    if rotary is not None:

        def rot_hook(_module, _args, output):
            cos, sin = output
            acts.rotary = (cos.detach(), sin.detach())

        handles.append(rotary.register_forward_hook(rot_hook))

    want_probs = attentions or logits
    try:
        with torch.no_grad():
            if logits:
                _register_capture()
                _module_layer.clear()
                _module_layer.update({id(adapter.attention_module(l)): l for l in range(adapter.n_layers)})
                _active_logit_sink = acts.logits
                with _attn_implementation(model, _CAPTURE_IMPL):
                    out = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=want_probs)
            else:
                out = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=attentions)
    except _StopForward:
        out = None  # everything asked for is recorded; the upper layers were not needed
    finally:
        _active_logit_sink = None
        for h in handles:
            h.remove()
    if attentions and getattr(out, "attentions", None) is not None:
        acts.attentions = {l: out.attentions[l].detach() for l in layers}
    missing = [l for l in layers if l not in acts.residuals]
    if missing:
        raise RuntimeError(f"no residual captured for layers {missing}; the adapter's hook point is wrong")
    return acts
