"""A standalone, interactive HTML view of a KnowledgeGraph, rendered with neo4j-viz.

Library choice: ``neo4j-viz`` (import ``neo4j_viz``) renders with NVL, the graph renderer of Neo4j's
own tools (Bloom, Explore), so the HTML view looks and behaves like the graph people see after
loading it into Neo4j. Its ``VisualizationGraph.render()`` returns a single HTML page with the
whole renderer (JS, CSS and fonts) inlined and the graph data in an inert JSON block: no CDN, no
server, so the file opens offline from disk and can be mailed around (the price is ~4.5 MB per
file). It takes plain ids, captions, colours and sizes, which is all we need; it needs no Neo4j.

What this module adds on top:

* only the ``max_nodes`` strongest nodes (by mentions + degree) and the ``max_edges`` strongest
  relations among them are drawn, so huge graphs still open; a footer says how much is shown;
* node caption = text, colour by entity label (or span kind for non-entities; pronouns always in
  their own colour, ``KIND_COLOURS``), radius by mentions, a legend entry per colour;
  relation caption = the relation's name: a typed relation's UD name (``nsubj``, ``obj``); for an
  untyped subspace its label without the evaluation's accuracy suffix, or the subspace id when
  unlabelled; width by score; the scores and the unit stay in the relation's properties;
* fact edges (``subject -[predicate]-> object``) are drawn too, in their own colour
  (``FACT_COLOUR``) and captioned with the predicate, width by probability; ``layer`` picks what is
  drawn: "all" (relations and facts), "relations" or "facts" (the fact layer alone);
* the layout selector is hidden: the alternative layouts run in SharedWorker scripts that
  neo4j-viz loads from separate files, which a standalone page does not have;
* a small script that, once NVL has laid the graph out, copies what the renderer actually holds
  (node ids, captions, positions; relationships) into ``<pre id="qkgraph-rendered">``. NVL draws
  to a canvas, so this is the only way to check from outside (tests, a DevTools client) that
  the page really rendered the graph. It reads NVL's debugging hooks (``window.__Nvl_dumpNodes``
  and friends), which are not a documented API; if they vanish it reports ``"status": "no-hooks"``.
* the output is deterministic: neo4j-viz names its container with a random id, replaced here by
  a fixed one, so the same graph gives a byte-identical file.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any, Literal

from neo4j_viz import Node, Relationship, VisualizationGraph

from pipeline.graph.atomic import atomic_write_text
from pipeline.graph.knowledge_graph import KnowledgeGraph
from pipeline.graph.provenance import is_typed_relation

#: Colour-blind friendly palette (Okabe-Ito, then Tableau-ish extras); categories get colours in order.
PALETTE: tuple[str, ...] = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#999999",
    "#8C564B",
    "#17BECF",
    "#BCBD22",
    "#9467BD",
)
#: Span kinds with a colour of their own whatever the graph (not in PALETTE, so no other category shares it).
KIND_COLOURS: dict[str, str] = {"pronoun": "#882255"}
#: Colour of fact edges (relation edges keep the renderer's default grey).
FACT_COLOUR = "#0072B2"
#: What the view draws: relation and fact edges, relations only, or the fact layer alone.
Layer = Literal["all", "relations", "facts"]
LAYERS: tuple[str, ...] = ("all", "relations", "facts")
#: Node radius range in pixels (scaled by sqrt of mentions, so area tracks mentions).
RADIUS_MIN, RADIUS_MAX = 12.0, 40.0

_CONTAINER_ID_RE = re.compile(r'<div id="(neo4j-viz-[0-9a-f]{12})"')
_FIXED_CONTAINER_ID = "neo4j-viz-qkgraph"

# Polls NVL until it has laid the nodes out, then writes what it holds into the page. Plain ES5 so
# it runs next to the module script without a bundler. Gives up after ~9 s of page time, so that it
# still reports under chromium's --virtual-time-budget=10000.
_PROBE_SCRIPT = """<script>
(function () {
  var tries = 0, previous = null;
  function publish(payload) {
    document.getElementById("qkgraph-rendered").textContent = JSON.stringify(payload);
    document.body.setAttribute("data-qkgraph-rendered", payload.status);
  }
  function poll() {
    tries += 1;
    var last = tries >= 36;
    if (typeof window.__Nvl_dumpNodes !== "function") {
      if (last) { publish({status: "no-hooks"}); } else { setTimeout(poll, 250); }
      return;
    }
    var nodes = window.__Nvl_dumpNodes() || [];
    var placed = nodes.filter(function (n) { return isFinite(n.x) && isFinite(n.y); });
    var spots = {};
    placed.forEach(function (n) { spots[Math.round(n.x) + "," + Math.round(n.y)] = true; });
    var signature = JSON.stringify(placed.map(function (n) { return [n.id, n.x, n.y]; }));
    // Laid out = every node placed, positions unchanged since the last poll, and (with two or
    // more nodes) not all still stacked on the starting point.
    var settled = placed.length === nodes.length && signature === previous &&
                  (nodes.length < 2 || Object.keys(spots).length > 1);
    previous = signature;
    if (!settled && !last) { setTimeout(poll, 250); return; }
    var rels = (window.__Nvl_dumpRelationships && window.__Nvl_dumpRelationships()) || [];
    var onScreen = (window.__Nvl_getNodesOnScreen && window.__Nvl_getNodesOnScreen()) || {nodes: []};
    publish({
      status: settled ? (nodes.length ? "rendered" : "empty") : "unsettled",
      nodes: nodes.map(function (n) { return {id: n.id, caption: n.caption, x: n.x, y: n.y}; }),
      relationships: rels.map(function (r) {
        return {id: r.id, from: r.from, to: r.to, caption: r.caption};
      }),
      nodes_on_screen: (onScreen.nodes || []).length
    });
  }
  window.addEventListener("load", function () { setTimeout(poll, 250); });
})();
</script>"""


def _category(data: dict[str, Any]) -> str:
    """Colour category: the entity label (PERSON, GPE...) for entities, else the span kind."""
    kind = str(data.get("kind", ""))
    label = str(data.get("label", ""))
    if kind == "entity" and label:
        return label
    return kind or "unknown"


def _is_fact(data: dict[str, Any]) -> bool:
    return data.get("kind") == "fact"


def _strength(data: dict[str, Any]) -> float:
    """A relation's ``score_max`` or a fact's ``probability_max``."""
    return float(data.get("probability_max" if _is_fact(data) else "score_max", 0.0))


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")


def select_subgraph(
    kg: KnowledgeGraph, max_nodes: int, max_edges: int, include_isolated: bool = False, layer: Layer = "all"
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The nodes and edges to draw: top nodes by mentions + degree, top edges among them by score.

    ``layer`` chooses the edges: "all", "relations" or "facts"; degrees count that layer's edges only.
    Nodes without any edge of the layer are left out unless ``include_isolated`` (or the layer has no
    edges at all): a mention that relates to nothing is noise in a picture of relations.
    Ties are broken by node key / (source, target, key), so the selection is deterministic.
    """
    _check_layer(layer)
    g = kg.g
    layer_edges = [
        (u, v, k, data)
        for u, v, k, data in g.edges(keys=True, data=True)
        if layer == "all" or (layer == "facts") == _is_fact(data)
    ]
    degree: dict[str, int] = {}
    for u, v, _, _ in layer_edges:
        degree[u] = degree.get(u, 0) + 1
        degree[v] = degree.get(v, 0) + 1
    pool = list(g.nodes) if include_isolated or not layer_edges else [n for n in g.nodes if degree.get(n, 0) > 0]
    ranked = sorted(pool, key=lambda n: (-(int(g.nodes[n].get("mentions", 0)) + degree.get(n, 0)), n))
    nodes = sorted(ranked[: max(max_nodes, 0)])
    keep = set(nodes)
    candidates = [(-_strength(data), u, v, k) for u, v, k, data in layer_edges if u in keep and v in keep]
    candidates.sort()
    edges = sorted((u, v, k) for _, u, v, k in candidates[: max(max_edges, 0)])
    return nodes, edges


def write_html(
    kg: KnowledgeGraph,
    path: str | Path,
    max_nodes: int = 300,
    title: str = "qkgraph",
    max_edges: int = 2000,
    include_isolated: bool = False,
    layer: Layer = "all",
) -> Path:
    """Write a standalone interactive HTML view of ``kg`` to ``path`` (atomically) and return the path.

    Draws at most ``max_nodes`` nodes (highest mentions + degree) and ``max_edges`` edges among them
    (highest ``score_max`` / ``probability_max``) of the ``layer``: "all" (relations and facts),
    "relations" or "facts". The file works offline (everything is inlined).

    Raises:
        ValueError: an unknown ``layer``.
    """
    path = Path(path)
    g = kg.g
    node_ids, edge_ids = select_subgraph(kg, max_nodes, max_edges, include_isolated, layer)

    # Colours: most common categories get the first palette entries; deterministic by name on ties.
    counts: dict[str, int] = {}
    for n in node_ids:
        cat = _category(g.nodes[n])
        counts[cat] = counts.get(cat, 0) + 1
    categories = sorted(counts, key=lambda c: (-counts[c], c))
    # Any values: set_legend takes a dict of neo4j-viz colour types, and dict is invariant in them.
    colours: dict[str, Any] = {}
    rotating = 0
    for cat in categories:
        fixed = KIND_COLOURS.get(cat)
        colours[cat] = fixed if fixed is not None else PALETTE[rotating % len(PALETTE)]
        rotating += fixed is None

    max_mentions = max((int(g.nodes[n].get("mentions", 1)) for n in node_ids), default=1) or 1
    viz_nodes = []
    for n in node_ids:
        data = g.nodes[n]
        mentions = int(data.get("mentions", 0))
        radius = RADIUS_MIN + (RADIUS_MAX - RADIUS_MIN) * math.sqrt(max(mentions, 0) / max_mentions)
        # model_validate, not Node(...): without pydantic's mypy plugin, mypy takes every field of
        # these pydantic models as a required keyword argument.
        viz_nodes.append(
            Node.model_validate(
                {
                    "id": n,
                    "caption": str(data.get("text", n)),
                    "size": round(radius, 2),
                    "color": colours[_category(data)],
                    "properties": {
                        "key": n,
                        "text": str(data.get("text", n)),
                        "label": str(data.get("label", "")),
                        "kind": str(data.get("kind", "")),
                        "mentions": mentions,
                        "degree": g.degree(n),
                        "documents": len(data.get("documents", [])),
                    },
                }
            )
        )

    viz_rels = []
    for i, (u, v, k) in enumerate(edge_ids):
        data = g.edges[u, v, k]
        if _is_fact(data):
            viz_rels.append(_fact_relationship(f"r{i}", u, v, data))
            continue
        score = float(data.get("score_max", 0.0))
        viz_rels.append(
            Relationship.model_validate(
                {
                    "id": f"r{i}",
                    "source": u,
                    "target": v,
                    "caption": relation_caption(str(data.get("label") or ""), k),
                    "width": round(1.0 + 4.0 * min(max(score, 0.0), 1.0), 3),
                    "properties": {
                        "relation": k,
                        "label": str(data.get("label", "")),
                        "unit": str(data.get("unit", "")),
                        "score_max": score,
                        "score_mean": float(data.get("score_mean", 0.0)),
                        "count": int(data.get("count", 0)),
                        "documents": len(data.get("documents", [])),
                    },
                }
            )
        )

    vg = VisualizationGraph(nodes=viz_nodes, relationships=viz_rels)
    if colours:
        vg.set_legend(nodes=colours)
    page = vg.render(
        width="100%",
        height="100vh",
        theme="light",
        show_layout_button=False,
        on_dangling="error",
        max_allowed_nodes=max(len(viz_nodes), 1),
    ).data
    shown_facts = sum(1 for u, v, k in edge_ids if _is_fact(g.edges[u, v, k]))
    all_facts = sum(1 for _, _, data in g.edges(data=True) if _is_fact(data))
    page = _postprocess(
        page,
        title,
        len(viz_nodes),
        g.number_of_nodes(),
        (len(viz_rels) - shown_facts, g.number_of_edges() - all_facts),
        (shown_facts, all_facts),
    )
    return atomic_write_text(path, page)


def _fact_relationship(rel_id: str, subject: str, obj: str, data: dict[str, Any]) -> Relationship:
    """A fact edge as drawn: captioned with its predicate, in FACT_COLOUR, width by probability."""
    probability = float(data.get("probability_max", 0.0))
    return Relationship.model_validate(
        {
            "id": rel_id,
            "source": subject,
            "target": obj,
            "caption": str(data.get("predicate", "")),
            "color": FACT_COLOUR,
            "width": round(1.0 + 4.0 * min(max(probability, 0.0), 1.0), 3),
            "properties": {
                "kind": "fact",
                "predicate": str(data.get("predicate", "")),
                "fact_kind": str(data.get("fact_kind", "")),
                "units": ", ".join(str(u) for u in data.get("units", [])),
                "probability_max": probability,
                "probability_mean": float(data.get("probability_mean", 0.0)),
                "count": int(data.get("count", 0)),
                "documents": len(data.get("documents", [])),
            },
        }
    )


_ACCURACY_SUFFIX_RE = re.compile(r"\s*\(\d*\.?\d+\)$")


def relation_caption(label: str, relation: str) -> str:
    """A relation's readable name: a typed relation's own (``"obj"``); for an untyped subspace its label
    without the accuracy suffix (``"compound (0.81)"`` -> ``"compound"``), or the subspace id if unlabelled."""
    if is_typed_relation(relation):
        return relation  # the graph means what it says: the relation, whatever label a human gave it
    # Labels from the evaluation carry their held-out accuracy in parentheses; a caption beside an
    # edge whose width already shows the score reads better as the bare name.
    name = _ACCURACY_SUFFIX_RE.sub("", label).strip()
    return name or relation


def _postprocess(
    page: str, title: str, shown_nodes: int, all_nodes: int, relations: tuple[int, int], facts: tuple[int, int]
) -> str:
    """Fixed container id, our title, a footer saying what is shown, and the render probe.

    ``relations`` and ``facts``: (shown, in the graph); facts are mentioned only when the graph has some.
    """
    match = _CONTAINER_ID_RE.search(page)
    if match:
        page = page.replace(match.group(1), _FIXED_CONTAINER_ID)
    page = page.replace("<title>neo4j-viz</title>", f"<title>{html.escape(title)}</title>", 1)
    footer = (
        '<div id="qkgraph-footer" style="position:fixed;left:50%;top:8px;transform:translateX(-50%);'
        "z-index:10;font:12px system-ui,sans-serif;color:#444;background:rgba(255,255,255,.8);"
        'padding:2px 6px;border-radius:4px">'
        f"{html.escape(title)}: {shown_nodes} of {all_nodes} nodes, "
        f"{relations[0]} of {relations[1]} relations"
        + (f", {facts[0]} of {facts[1]} facts" if facts[1] else "")
        + " shown"
        "</div>\n"
        '<pre id="qkgraph-rendered" hidden></pre>\n'
    )
    # The template's own </body> is the last one; anything earlier would be inside its scripts.
    cut = page.rfind("</body>")
    if cut < 0:
        return page + footer + _PROBE_SCRIPT
    return page[:cut] + footer + _PROBE_SCRIPT + "\n" + page[cut:]
