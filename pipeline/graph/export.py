"""Writing the graph: GraphML, node-link JSON beside it, the HTML view; every file atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.graph.knowledge_graph import KnowledgeGraph


def json_path_for(out: Path) -> Path:
    """Where the node-link JSON of a graph written to ``out`` lives: ``out`` itself if it is .json, else beside it."""
    return out if out.suffix == ".json" else out.with_suffix(".json")


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, fsync it, then rename it onto ``path``.

    A reader sees the old file or the new one, never a half-written one; an error leaves the old file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_outputs(kg: KnowledgeGraph, out: Path | None, html: Path | None, title: str = "qkgraph") -> dict[str, str]:
    """GraphML (+ node-link JSON beside it) and the HTML view, each atomically; returns kind -> path written."""
    from pipeline.graph.html import write_html

    written: dict[str, str] = {}
    if out is not None:
        if out.suffix != ".json":
            atomic_write(out, kg.to_graphml)
            written["graphml"] = str(out)
        json_path = json_path_for(out)
        atomic_write(json_path, kg.to_node_link)
        written["json"] = str(json_path)
    if html is not None:
        atomic_write(html, lambda p: write_html(kg, p, title=title))
        written["html"] = str(html)
    return written
