"""The adapter contract: where a model family keeps its query/key weights and how it positions tokens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn


@dataclass(frozen=True)
class LayerQK:
    """Query/key weights of one attention layer, split per head.

    Shapes:
        w_q: [n_heads, d_model, d_head]  (q^h = x @ w_q[h] + b_q[h])
        b_q: [n_heads, d_head]           (zeros where the model has no query bias)
        w_k: [n_kv_heads, d_model, d_head]
        b_k: [n_kv_heads, d_head]
    """

    w_q: torch.Tensor
    b_q: torch.Tensor
    w_k: torch.Tensor
    b_k: torch.Tensor


class AttentionAdapter(ABC):
    """Uniform view of one architecture family's attention, one subclass per family.

    The residual stream that enters Q/K is read at the input of ``qk_input_module(layer)``: for post-LN
    BERT it is the previous layer's (already normalised) output, for pre-LN decoders it is the output
    of the layer's input norm. Hooking the projection's input captures exactly what the model used.
    """

    family: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]
    causal: ClassVar[bool]
    positional: ClassVar[Literal["absolute", "rotary"]]

    def __init__(self, model: nn.Module) -> None:
        # Typed Any: a transformers model's submodules and config are reached by attribute names
        # that differ per family (torch's __getattr__ would type them Tensor | Module).
        self.model: Any = model
        self.config: Any = model.config

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def n_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads

    @property
    def d_model(self) -> int:
        return int(self.config.hidden_size)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def rotary_dim(self) -> int:
        """Number of leading head dimensions that RoPE rotates (0 without RoPE)."""
        return 0

    def kv_head(self, head: int) -> int:
        """The key/value head that query head ``head`` reads (grouped-query attention)."""
        return head // (self.n_heads // self.n_kv_heads)

    # -- modules --------------------------------------------------------------------------------
    @property
    def base(self) -> Any:
        """The bare transformer (without LM or pooling heads), an ``nn.Module`` of the family's layout."""
        return self.model.base_model

    @abstractmethod
    def attention_module(self, layer: int) -> nn.Module:
        """The module that holds ``scaling`` and computes attention for ``layer``."""

    @abstractmethod
    def qk_input_module(self, layer: int) -> nn.Module:
        """A module whose first positional input is the normalised residual entering Q/K."""

    @abstractmethod
    def layer_qk(self, layer: int) -> LayerQK:
        """Per-head W_Q, b_Q, W_K, b_K of ``layer`` (detached copies, model dtype)."""

    def rotary_module(self) -> nn.Module | None:
        """The module returning (cos, sin) for positions, for RoPE models."""
        return None

    def scaling(self, layer: int) -> float:
        """The factor applied to q·k (1/sqrt(d_head), or the model's own variant)."""
        scale = getattr(self.attention_module(layer), "scaling", None)
        return float(scale) if scale is not None else self.d_head**-0.5

    def embedding_matrix(self) -> torch.Tensor:
        """Static token embeddings, [vocab, d_model]."""
        return self.model.get_input_embeddings().weight

    def describe(self) -> dict[str, object]:
        """A summary of the layout, for logs and provenance."""
        return {
            "family": self.family,
            "model_type": getattr(self.config, "model_type", "?"),
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "d_model": self.d_model,
            "d_head": self.d_head,
            "positional": self.positional,
            "rotary_dim": self.rotary_dim,
            "causal": self.causal,
        }


def split_linear(
    weight: torch.Tensor, bias: torch.Tensor | None, n: int, d_head: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an nn.Linear (weight [n*d_head, d_model]) into per-head [n, d_model, d_head] and bias [n, d_head]."""
    d_model = weight.shape[1]
    w = weight.detach().reshape(n, d_head, d_model).transpose(1, 2).contiguous()
    b = torch.zeros(n, d_head, dtype=weight.dtype) if bias is None else bias.detach().reshape(n, d_head).clone()
    return w, b
