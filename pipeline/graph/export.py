"""The files an ingest writes: GraphML, node-link JSON beside it, and the HTML view; every one atomic.

``write_outputs`` is what the CLI and the flows call. Each file is written to a temporary file in
its own folder, fsynced and renamed over the target (``pipeline.graph.atomic``), so a crash or a
reader at the wrong moment sees the previous file or the complete new one, never a torn one.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.graph.html import Layer, write_html
from pipeline.graph.knowledge_graph import KnowledgeGraph

__all__ = ["json_path_for", "write_outputs"]


def json_path_for(out: Path) -> Path:
    """Where the node-link JSON of an ``--out`` path lives: ``out`` itself if it ends in ``.json``,
    else beside it with the suffix replaced (``graph.graphml`` -> ``graph.json``).

    The one place that knows this; readers (``--update``, the flows) should ask it too.
    """
    return out if out.suffix == ".json" else out.with_suffix(".json")


def write_outputs(
    kg: KnowledgeGraph, out: Path | None, html: Path | None, title: str = "qkgraph", html_layer: Layer = "all"
) -> dict[str, str]:
    """Write the graph files and return {"graphml"|"json"|"html": path} for what was written.

    ``out`` ending in ``.json`` writes only node-link JSON there; any other ``out`` writes GraphML
    to it and node-link JSON to ``json_path_for(out)``. ``html`` writes the interactive view, of the
    edges of ``html_layer`` ("all", "relations" or "facts"; ``pipeline.graph.html.write_html``). Missing
    parent folders are created. Every file is replaced atomically.
    """
    written: dict[str, str] = {}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        json_path = json_path_for(out)
        if json_path != out:
            kg.to_graphml(out)
            written["graphml"] = str(out)
        kg.to_node_link(json_path)
        written["json"] = str(json_path)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        write_html(kg, html, title=title, layer=html_layer)
        written["html"] = str(html)
    return written
