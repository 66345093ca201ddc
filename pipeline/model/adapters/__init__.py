"""Model adapters, one file per architecture family, and model loading.

``adapter_for(model)`` picks the adapter from ``config.model_type``; ``load_model(name)`` resolves a
name (the packaged default, ``smollm2``, a local folder, a ``.gguf`` file, or a hub name where a hub
is reachable) and returns the model, its tokenizer and its adapter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.errors import ModelNotFoundError, UnsupportedArchitectureError
from pipeline.model.adapters.base import AttentionAdapter, LayerQK
from pipeline.model.adapters.bert import BertAdapter
from pipeline.model.adapters.gpt2 import GPT2Adapter
from pipeline.model.adapters.gpt_neox import GPTNeoXAdapter
from pipeline.model.adapters.llama import LlamaAdapter

ADAPTERS: tuple[type[AttentionAdapter], ...] = (BertAdapter, GPT2Adapter, LlamaAdapter, GPTNeoXAdapter)
_BY_MODEL_TYPE = {mt: cls for cls in ADAPTERS for mt in cls.model_types}
SUPPORTED_MODEL_TYPES = tuple(sorted(_BY_MODEL_TYPE))

__all__ = [
    "ADAPTERS",
    "SUPPORTED_MODEL_TYPES",
    "AttentionAdapter",
    "LayerQK",
    "LoadedModel",
    "adapter_class_for",
    "adapter_for",
    "load_model",
]


def adapter_class_for(model_type: str) -> type[AttentionAdapter]:
    """The adapter class for a ``config.model_type``; raises naming the supported types otherwise."""
    try:
        return _BY_MODEL_TYPE[model_type]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"model type {model_type!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        ) from None


def adapter_for(model: nn.Module) -> AttentionAdapter:
    """Wrap a loaded Hugging Face model in its family's adapter."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type is None:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} has no Hugging Face config; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return adapter_class_for(model_type)(model)


@dataclass
class LoadedModel:
    """A model ready for extraction: weights in eval mode, tokenizer, adapter and a display name."""

    model: nn.Module
    tokenizer: object
    adapter: AttentionAdapter
    name: str


def _resolve(name: str | None) -> tuple[str, str | None, str]:
    """(path or hub id, gguf file name or None, display name)."""
    from pipeline.model.defaults import DEFAULT_MODEL, SMOLLM2, default_model_path, smollm2_gguf_path

    if name is None or name in (DEFAULT_MODEL, "default"):
        return str(default_model_path()), None, DEFAULT_MODEL
    if name == SMOLLM2:
        gguf = smollm2_gguf_path()
        return str(gguf.parent), gguf.name, SMOLLM2
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        return str(path.parent), path.name, path.name
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path), None, path.name
    return name, None, name


def load_model(name: str | None = None, dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load a supported model with eager attention (so attentions can be returned) in eval mode."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source, gguf_file, display = _resolve(name)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelNotFoundError(
            f"unknown model {name!r}: not a local folder or .gguf file, not the packaged default "
            f"('all-minilm-l6-v2') or 'smollm2'"
            + (", and the hub is off (HF_HUB_OFFLINE=1)" if offline else f", and the hub said: {exc}")
        ) from None
    adapter_class_for(config.model_type)  # fail before loading weights
    # transformers draws its own "Loading weights" bar on stderr; qkgraph's output has its own progress.
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(source, attn_implementation="eager", dtype=dtype, **kwargs).eval()
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    finally:
        if bar_was_on:  # a library call leaves the process's setting as it found it
            hf_logging.enable_progress_bar()
    return LoadedModel(model=model, tokenizer=tokenizer, adapter=adapter_for(model), name=display)
