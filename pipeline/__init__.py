"""qkgraph: knowledge graphs from the relations a transformer's query-key circuits compute between tokens.

Public API (the original Knowledge Graph Extractor's names are kept):

    from pipeline import HookedAutoConfig, HookedAutoModel, BaseInterpretabilityBench
    from pipeline import KnowledgeGraphExtractor, load_model
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "BaseInterpretabilityBench",
    "HookedAutoConfig",
    "HookedAutoModel",
    "KnowledgeGraphExtractor",
    "RelationalSubspace",
    "TokenRelation",
    "load_model",
]


def __getattr__(name: str):
    # Lazy imports: `import pipeline` stays fast (no torch/transformers) for the CLI and the flows.
    if name in ("HookedAutoConfig", "HookedAutoModel", "BaseInterpretabilityBench"):
        from pipeline import seed

        return getattr(seed, name)
    if name in ("KnowledgeGraphExtractor", "RelationalSubspace", "TokenRelation"):
        from pipeline.model import extractor

        return getattr(extractor, name)
    if name == "load_model":
        from pipeline.model.adapters import load_model

        return load_model
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
