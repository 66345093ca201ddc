"""The original Knowledge Graph Extractor's entry points: HookedAutoConfig, HookedAutoModel and an
experiment bench whose ``use_tools("kg_extractor")`` decorator passes a KnowledgeGraphExtractor in.

Only the ``kg_extractor`` tool is carried over; the original bench's other tools are out of scope.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import ModelTooLargeError, QkgraphError, UnsupportedArchitectureError
from pipeline.model.extractor import KnowledgeGraphExtractor

#: The seed's short names that have an adapter (pipeline/model/adapters/), -> their transformers config.
SEED_NAMES: dict[str, str] = {
    "gpt2": "GPT2Config",
    "gpt-neox": "GPTNeoXConfig",
    "llama": "LlamaConfig",
    "qwen2": "Qwen2Config",
    "mistral": "MistralConfig",
}
#: Names the original seed also accepted; refused up front, naming the supported ones.
UNSUPPORTED_SEED_NAMES = ("gpt-neo", "gemma", "phi3", "stable-lm")
_OTHER_SEED_TOOLS = (
    "causal",
    "knowledge",
    "logit",
    "attention",
    "write_read",
    "composer",
    "logit_lens",
    "decomposer",
    "sparsity",
    "superposition",
    "residual",
    "k_prober",
    "surgery",
    "feature_viz",
)
MEMORY_FRACTION = 0.6
"""Refuse to build a random model whose float32 weights exceed this share of available memory."""


class HookedAutoConfig:
    """A transformers config chosen by the seed's short name, with any config field overridden.

    ``HookedAutoConfig(name="llama", hidden_size=64, num_hidden_layers=2)``; unknown names raise a
    ValueError listing the accepted ones. The wrapped config is ``.hf_config``.
    """

    def __init__(self, name: str = "llama", **overrides: Any) -> None:
        import transformers

        if name in UNSUPPORTED_SEED_NAMES:
            raise UnsupportedArchitectureError(
                f"{name!r} has no QK adapter yet; supported: {', '.join(SEED_NAMES)} "
                "(one new file in pipeline/model/adapters/ adds a family, see docs/architecture.md)"
            )
        if name not in SEED_NAMES:
            raise ValueError(f"name must be one of {', '.join(SEED_NAMES)}; got {name!r}")
        self.name = name
        config_cls = getattr(transformers, SEED_NAMES[name])
        self.hf_config = config_cls(**overrides)
        self.hf_config._attn_implementation = "eager"

    def __getattr__(self, item: str) -> Any:
        # Reached only for attributes not on this object: read through to the HF config.
        return getattr(self.__dict__["hf_config"], item)

    def __repr__(self) -> str:
        c = self.hf_config
        return f"HookedAutoConfig(name={self.name!r}, hidden_size={c.hidden_size}, layers={c.num_hidden_layers}, heads={c.num_attention_heads})"


def parameter_count(config: HookedAutoConfig) -> int:
    """Number of parameters the model would have, counted on the meta device (no memory used)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config.hf_config)
    return sum(p.numel() for p in model.parameters())


class HookedAutoModel(nn.Module):
    """A random-weight causal LM built from a HookedAutoConfig, returning (logits, activations).

    Refuses up front (ModelTooLargeError) when float32 weights would not fit in memory, instead of
    being killed for running out of it. ``.model`` is the underlying transformers model.
    """

    def __init__(self, config: HookedAutoConfig) -> None:
        super().__init__()
        import psutil
        from transformers import AutoModelForCausalLM

        n_params = parameter_count(config)
        need = n_params * 4
        available = psutil.virtual_memory().available
        if need > MEMORY_FRACTION * available:
            raise ModelTooLargeError(
                f"HookedAutoConfig(name={config.name!r}) has {n_params / 1e9:.2f}B parameters "
                f"({need / 2**30:.1f} GiB in float32) but only {available / 2**30:.1f} GiB of memory is "
                f"available; pass smaller sizes, e.g. HookedAutoConfig(name={config.name!r}, hidden_size=64, "
                "intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)"
            )
        self.config = config
        self.model = AutoModelForCausalLM.from_config(config.hf_config, attn_implementation="eager").eval()

    def forward(self, input_ids: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            out = self.model(input_ids=input_ids, output_hidden_states=True, **kwargs)
        acts = {f"hook_resid_pre.{i}": h for i, h in enumerate(out.hidden_states)}
        return out.logits, acts


class BaseInterpretabilityBench:
    """Experiment bench: ``@bench.use_tools("kg_extractor")`` passes the tool as a keyword argument."""

    TOOLS = ("kg_extractor",)

    def __init__(self, model: HookedAutoModel | nn.Module, save_dir: str | Path = "experiments") -> None:
        self.model = model
        self.save_dir = Path(save_dir)
        self._tools: dict[str, object] = {}

    def _hf_model(self) -> nn.Module:
        return self.model.model if isinstance(self.model, HookedAutoModel) else self.model

    def tool(self, name: str) -> object:
        if name in _OTHER_SEED_TOOLS:
            raise QkgraphError(
                f"tool {name!r} of the original bench is out of scope in qkgraph; available: {', '.join(self.TOOLS)}"
            )
        if name not in self.TOOLS:
            raise ValueError(f"unknown tool {name!r}; available: {', '.join(self.TOOLS)}")
        if name not in self._tools:
            self._tools[name] = KnowledgeGraphExtractor(self._hf_model())
        return self._tools[name]

    def use_tools(self, *names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: the function receives each named tool as a keyword argument of the same name."""
        tools = {name: self.tool(name) for name in names}

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return fn(*args, **kwargs, **tools)

            return wrapper

        return decorate
