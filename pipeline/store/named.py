"""The saved queries (``pipeline/store/cypher/*.cypher``, also ``queries/`` at the top of a checkout), by name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import neo4j

from pipeline.store.connection import read_rows

__all__ = ["QUERIES_DIR", "load_query", "query_names", "run_named_query"]

QUERIES_DIR = Path(__file__).resolve().parent / "cypher"
_QUERY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def query_names() -> list[str]:
    """Names of the saved queries (file names without .cypher)."""
    return sorted(p.stem for p in QUERIES_DIR.glob("*.cypher"))


def load_query(name: str) -> str:
    """The Cypher of cypher/NAME.cypher without its comment lines. ValueError for an unknown name."""
    if not isinstance(name, str) or not _QUERY_NAME_RE.fullmatch(name) or name not in query_names():
        raise ValueError(f"unknown query {name!r} (known: {', '.join(query_names())})")
    lines = (QUERIES_DIR / f"{name}.cypher").read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("//")).strip()


def run_named_query(driver: neo4j.Driver, database: str, name: str, **params: Any) -> list[dict[str, Any]]:
    """Run cypher/NAME.cypher (read-only, in a read transaction) with ``params``; its rows as dicts."""
    return read_rows(driver, database, load_query(name), **params)
