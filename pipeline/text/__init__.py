"""Stages 1-2, text: document sources (txt, md, jsonl, CoNLL-U), spaCy, sentences and span mentions."""
