"""HTML view: a standalone neo4j-viz page, checked in real headless Chromium (offline)."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from chromium_cdp import CHROMIUM, DevToolsPipe
from test_graph import with_facts

from pipeline.graph import KnowledgeGraph
from pipeline.graph.html import FACT_COLOUR, KIND_COLOURS, PALETTE, relation_caption, select_subgraph, write_html
from pipeline.types import Document, DocumentAnalysis, Span, SpanRelation

# (key, text, label, kind) of the small test graph; texts are what the page must show.
NODES = [
    ("entity:PERSON:marie curie", "Marie Curie", "PERSON", "entity"),
    ("entity:PERSON:pierre curie", "Pierre Curie", "PERSON", "entity"),
    ("entity:GPE:paris", "Paris", "GPE", "entity"),
    ("noun_chunk:radium", "radium", "", "noun_chunk"),
]

# Relation captions: the relation's name, i.e. its label (or relation id when unlabelled).
REL_CAPTIONS = ["nsubj", "nsubj", "L5H1k4", "L3H3k8"]


def small_graph() -> KnowledgeGraph:
    first = "Marie Curie and Pierre Curie discovered radium in Paris."
    text = first + " Marie Curie won."
    spans = []
    for key, surface, label, kind in NODES:
        at = text.index(surface)
        spans.append(Span(key, surface, label, kind, 0, at, at + len(surface)))  # type: ignore[arg-type]
    # A second mention of Marie Curie, in sentence 1, so node sizes differ.
    spans.append(Span(NODES[0][0], "Marie Curie", "PERSON", "entity", 1, len(first) + 1, len(first) + 12))
    relations = [
        SpanRelation(0, 3, "L2H8k12", 0.9, 0),
        SpanRelation(1, 3, "L2H8k12", 0.6, 0),
        SpanRelation(0, 2, "L5H1k4", 0.4, 0),
        SpanRelation(1, 0, "L3H3k8", 0.75, 0),
    ]
    kg = KnowledgeGraph(relation_labels={"L2H8k12": "nsubj"})
    sentences = [(0, len(first)), (len(first) + 1, len(text))]
    kg.add_analysis(DocumentAnalysis(Document("curie.txt", text), sentences, spans, relations))
    return kg


def typed_graph() -> KnowledgeGraph:
    """Typed relations (UD names, head -> dependent, with units), a pronoun, and one untyped relation."""
    # A human label for a typed relation does not change its caption; an untyped one's does.
    kg = KnowledgeGraph(relation_labels={"obj": "object (0.91)", "L2H8k12": "amod (0.81)"})
    kg.add_analysis(typed_analysis())
    return kg


def typed_analysis() -> DocumentAnalysis:
    text = "Marie Curie won the prize. She shared it."
    words = [
        ("entity:PERSON:marie curie", "Marie Curie", "PERSON", "entity", 0),
        ("word:win", "won", "", "word", 0),
        ("noun_chunk:prize", "the prize", "", "noun_chunk", 0),
        ("pronoun:typed.txt:she", "She", "", "pronoun", 1),
        ("word:share", "shared", "", "word", 1),
    ]
    spans = []
    for key, surface, label, kind, sent in words:
        at = text.index(surface)
        spans.append(Span(key, surface, label, kind, sent, at, at + len(surface)))  # type: ignore[arg-type]
    relations = [
        SpanRelation(1, 0, "nsubj", 0.97, 0, "qk:nsubj:L2A:H0c0-31"),
        SpanRelation(1, 2, "obj", 0.9, 0, "qk:obj:L2A:H0c0-31+H1c1.8"),
        SpanRelation(4, 3, "nsubj", 0.8, 1, "qk:nsubj:L2A:H0c0-31"),
        SpanRelation(3, 4, "L2H8k12", 0.3, 1),
    ]
    return DocumentAnalysis(Document("typed.txt", text), [(0, 26), (27, len(text))], spans, relations)


def fact_view_graph() -> KnowledgeGraph:
    """typed_graph's document with two facts: Marie Curie -[win]-> the prize, She -[share]-> the prize."""
    analysis = with_facts(
        typed_analysis(),
        [
            (0, 2, "win", "action", 1, [("nsubj", "qk:nsubj:L2A:H0c0-31", 0.97, 1, 0), ("obj", "", 0.9, 1, 2)]),
            (3, 2, "share", "action", 4, [("nsubj", "qk:nsubj:L2A:H0c0-31", 0.8, 4, 3), ("obj", "", 0.5, 4, 2)]),
        ],
    )
    kg = KnowledgeGraph()
    kg.add_analysis(analysis)
    return kg


def data_block(page: str) -> dict[str, object]:
    """The graph data neo4j-viz embedded for its renderer."""
    match = re.search(r'<script type="application/json" id="neo4j-viz-data">(.*?)</script>', page, re.S)
    assert match, "no neo4j-viz data block"
    return json.loads(match.group(1))


STATUS_JS = "document.body && document.body.getAttribute('data-qkgraph-rendered')"
PAYLOAD_JS = "document.getElementById('qkgraph-rendered').textContent"


def rendered_in_chromium(url: str) -> tuple[dict[str, Any], str]:
    """Open url in headless Chromium, wait (in real time) until the page's probe has published its
    status, and return (the probe's payload, the page's DOM then).

    Not ``chromium --dump-dom --virtual-time-budget``: virtual time races through the probe's polls
    while NVL's layout runs in real time, so under load the dump sometimes caught every node still
    stacked on the starting point ("unsettled") although the page lays out fine.
    """
    browser = DevToolsPipe((1000, 700))
    try:
        target = browser.call("Target.createTarget", {"url": url})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        status = None
        while status is None and time.monotonic() < browser.deadline - 10:
            result = browser.call("Runtime.evaluate", {"expression": STATUS_JS, "returnByValue": True}, session)
            status = result["result"].get("value")
            if status is None:
                time.sleep(0.2)
        assert status is not None, "the page's probe never published a status"
        payload = browser.call("Runtime.evaluate", {"expression": PAYLOAD_JS, "returnByValue": True}, session)
        dom = browser.call(
            "Runtime.evaluate", {"expression": "document.documentElement.outerHTML", "returnByValue": True}, session
        )
        return json.loads(payload["result"]["value"]), dom["result"]["value"]
    finally:
        browser.close()


def screenshot_when_rendered(url: str, window: tuple[int, int] = (1000, 700)) -> tuple[str | None, bytes]:
    """Open url, wait for the page's data-qkgraph-rendered status, return (status, PNG bytes)."""
    browser = DevToolsPipe(window)
    try:
        target = browser.call("Target.createTarget", {"url": url})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        status = None
        while status is None and time.monotonic() < browser.deadline - 10:
            query = {"expression": STATUS_JS, "returnByValue": True}
            result = browser.call("Runtime.evaluate", query, session)
            status = result["result"].get("value")
            if status is None:
                time.sleep(0.2)
        png = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, session)["data"])
        return status, png
    finally:
        browser.close()


@pytest.fixture(scope="module")
def page_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html(small_graph(), tmp_path_factory.mktemp("html") / "view.html", title="Curie <graph>")


def test_page_is_standalone_and_deterministic(page_path: Path, tmp_path: Path) -> None:
    page = page_path.read_text(encoding="utf-8")
    # Nothing is fetched: no external scripts, stylesheets or fonts.
    assert not re.search(r"<script[^>]+\bsrc=", page)
    assert not re.search(r"<link[^>]+\bhref=", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "<title>Curie &lt;graph&gt;</title>" in page
    assert "4 of 4 nodes, 4 of 4 relations shown" in page
    again = write_html(small_graph(), tmp_path / "again.html", title="Curie <graph>")
    assert again.read_bytes() == page_path.read_bytes()


def test_page_data_has_captions_colours_sizes(page_path: Path) -> None:
    data = data_block(page_path.read_text(encoding="utf-8"))
    nodes = {n["id"]: n for n in data["nodes"]}  # type: ignore[index, union-attr]
    assert {n["caption"] for n in nodes.values()} == {text for _, text, _, _ in NODES}
    # Colour by entity label / kind: both PERSON nodes share a colour, the others differ.
    person = nodes["entity:PERSON:marie curie"]["color"]
    assert nodes["entity:PERSON:pierre curie"]["color"] == person
    assert len({person, nodes["entity:GPE:paris"]["color"], nodes["noun_chunk:radium"]["color"]}) == 3
    # Size by mentions: Marie Curie (2 mentions) is the biggest, the others (1 each) are equal.
    sizes = sorted(n["size"] for n in nodes.values())
    assert nodes["entity:PERSON:marie curie"]["size"] == sizes[-1] > sizes[0] == sizes[-2]
    rels = {r["caption"] for r in data["relationships"]}  # type: ignore[index, union-attr]
    assert rels == set(REL_CAPTIONS)


def test_max_nodes_keeps_the_strongest_nodes(tmp_path: Path) -> None:
    kg = small_graph()
    nodes, edges = select_subgraph(kg, max_nodes=2, max_edges=10)
    # Mentions + degree: Marie Curie (2 + 3), then Pierre Curie and radium tie (1 + 2): broken by key.
    assert nodes == ["entity:PERSON:marie curie", "entity:PERSON:pierre curie"]
    assert edges == [("entity:PERSON:pierre curie", "entity:PERSON:marie curie", "L3H3k8")]
    page = write_html(kg, tmp_path / "top.html", max_nodes=2).read_text(encoding="utf-8")
    data = data_block(page)
    assert sorted(n["id"] for n in data["nodes"]) == nodes  # type: ignore[index, union-attr]
    assert len(data["relationships"]) == 1  # type: ignore[arg-type]
    assert "2 of 4 nodes, 1 of 4 relations shown" in page
    _, top_edge = select_subgraph(kg, max_nodes=10, max_edges=1)
    assert top_edge == [("entity:PERSON:marie curie", "noun_chunk:radium", "L2H8k12")]


def test_isolated_nodes_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    kg = small_graph()
    text = "Lisbon is far away."
    kg.add_analysis(
        DocumentAnalysis(
            Document("lonely.txt", text),
            [(0, len(text))],
            [Span("entity:GPE:lisbon", "Lisbon", "GPE", "entity", 0, 0, 6)],
            [],
        )
    )
    nodes, _ = select_subgraph(kg, max_nodes=10, max_edges=10)
    assert "entity:GPE:lisbon" not in nodes and len(nodes) == 4
    nodes, _ = select_subgraph(kg, max_nodes=10, max_edges=10, include_isolated=True)
    assert "entity:GPE:lisbon" in nodes
    page = write_html(kg, tmp_path / "v.html").read_text(encoding="utf-8")
    assert "4 of 5 nodes" in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_renders_in_headless_chromium(page_path: Path) -> None:
    # NVL draws on a canvas; the page's probe copies what the renderer holds into an element that
    # is empty in the file, after layout (so its content proves the scripts ran).
    rendered, dom = rendered_in_chromium(page_path.as_uri())
    assert rendered["status"] == "rendered", rendered
    assert sorted(n["caption"] for n in rendered["nodes"]) == sorted(text for _, text, _, _ in NODES)
    assert rendered["nodes_on_screen"] == len(NODES)
    positions = {(round(n["x"]), round(n["y"])) for n in rendered["nodes"]}
    assert len(positions) == len(NODES), "nodes were not laid out"
    assert sorted(r["caption"] for r in rendered["relationships"]) == sorted(REL_CAPTIONS)
    assert 'data-qkgraph-rendered="rendered"' in dom


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_screenshot_shows_the_nodes(page_path: Path, tmp_path: Path) -> None:
    from PIL import Image

    status, png = screenshot_when_rendered(page_path.as_uri())
    shot = tmp_path / "shot.png"
    shot.write_bytes(png)
    assert status == "rendered"
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20, "blank screenshot"
    counts = {rgb: n for n, rgb in colours}
    data = data_block(page_path.read_text(encoding="utf-8"))
    fills = {n["color"].lower() for n in data["nodes"]}  # type: ignore[index, union-attr]
    assert fills <= {c.lower() for c in PALETTE}
    for fill in fills:
        rgb = tuple(int(fill[i : i + 2], 16) for i in (1, 3, 5))
        # A node of radius >= 12 px covers hundreds of pixels of its exact fill colour (the
        # legend's swatch of that colour is under 100).
        assert counts.get(rgb, 0) > 300, f"node colour {fill} not drawn"


def test_relation_caption_is_the_readable_name() -> None:
    assert relation_caption("compound (0.81)", "L0H2k10") == "compound"
    assert relation_caption("nmod:poss (0.77)", "L1H3k2") == "nmod:poss"
    assert relation_caption("nsubj", "L2H8k12") == "nsubj"
    assert relation_caption("", "L5H1k4") == "L5H1k4"
    # Typed relations: the relation name itself, whatever the label.
    assert relation_caption("obj", "obj") == "obj"
    assert relation_caption("", "nmod:poss") == "nmod:poss"
    assert relation_caption("object (0.91)", "obj") == "obj"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_typed_relations_show_their_name_and_pronouns_their_own_colour(tmp_path: Path) -> None:
    path = write_html(typed_graph(), tmp_path / "typed.html")
    data = data_block(path.read_text(encoding="utf-8"))
    rels = {(r["from"], r["to"]): r for r in data["relationships"]}  # type: ignore[index, union-attr]
    assert sorted(r["caption"] for r in rels.values()) == ["amod", "nsubj", "nsubj", "obj"]
    obj = rels[("word:win", "noun_chunk:prize")]
    assert (obj["caption"], obj["properties"]["unit"], obj["properties"]["label"]) == (
        "obj",
        "qk:obj:L2A:H0c0-31+H1c1.8",
        "object (0.91)",
    )
    nodes = {n["id"]: n for n in data["nodes"]}  # type: ignore[index, union-attr]
    pronoun = KIND_COLOURS["pronoun"]
    assert nodes["pronoun:typed.txt:she"]["color"] == pronoun and pronoun.upper() not in PALETTE
    assert all(n["color"] != pronoun for key, n in nodes.items() if not key.startswith("pronoun:"))
    legend = {e["label"]: e["color"] for e in data["legend"]["nodes"]["entries"]}  # type: ignore[index, call-overload]
    assert legend["pronoun"] == pronoun and len(set(legend.values())) == len(legend) == 4
    # And the renderer really holds them.
    rendered, _ = rendered_in_chromium(path.as_uri())
    assert rendered["status"] == "rendered", rendered
    assert sorted(r["caption"] for r in rendered["relationships"]) == ["amod", "nsubj", "nsubj", "obj"]
    assert "She" in {n["caption"] for n in rendered["nodes"]}


def test_fact_edges_are_drawn_with_their_predicate_and_the_fact_layer_alone(tmp_path: Path) -> None:
    kg = fact_view_graph()
    # Default: relations and facts together.
    page = write_html(kg, tmp_path / "all.html").read_text(encoding="utf-8")
    data = data_block(page)
    rels = data["relationships"]  # type: ignore[index]
    assert sorted(r["caption"] for r in rels) == ["L2H8k12", "nsubj", "nsubj", "obj", "share", "win"]  # type: ignore[union-attr]
    win = next(r for r in rels if r["caption"] == "win")  # type: ignore[union-attr]
    assert (win["from"], win["to"], win["color"]) == (
        "entity:PERSON:marie curie",
        "noun_chunk:prize",
        FACT_COLOUR.lower(),
    )
    assert win["properties"]["kind"] == "fact" and win["properties"]["fact_kind"] == "action"
    assert win["properties"]["probability_max"] == 0.97 * 0.9
    assert win["properties"]["units"] == "qk:nsubj:L2A:H0c0-31"
    assert "5 of 5 nodes, 4 of 4 relations, 2 of 2 facts shown" in page
    # The fact layer alone: only facts, only the spans they link ("won" and "shared" take part in none).
    nodes, edges = select_subgraph(kg, max_nodes=10, max_edges=10, layer="facts")
    assert nodes == ["entity:PERSON:marie curie", "noun_chunk:prize", "pronoun:typed.txt:she"]
    assert [k for _, _, k in edges] == ["fact:win", "fact:share"]
    facts_page = write_html(kg, tmp_path / "facts.html", layer="facts").read_text(encoding="utf-8")
    facts_data = data_block(facts_page)
    assert sorted(r["caption"] for r in facts_data["relationships"]) == ["share", "win"]  # type: ignore[union-attr]
    assert sorted(n["id"] for n in facts_data["nodes"]) == nodes  # type: ignore[union-attr, index]
    assert "3 of 5 nodes, 0 of 4 relations, 2 of 2 facts shown" in facts_page
    # Relations alone: what the view drew before facts existed.
    relations_page = write_html(kg, tmp_path / "relations.html", layer="relations").read_text(encoding="utf-8")
    captions = sorted(r["caption"] for r in data_block(relations_page)["relationships"])  # type: ignore[union-attr]
    assert captions == ["L2H8k12", "nsubj", "nsubj", "obj"]
    with pytest.raises(ValueError, match="layer"):
        write_html(kg, tmp_path / "bad.html", layer="everything")  # type: ignore[arg-type]


def test_a_graph_without_facts_draws_what_it_drew_before(tmp_path: Path) -> None:
    page = write_html(typed_graph(), tmp_path / "typed.html").read_text(encoding="utf-8")
    assert "5 of 5 nodes, 4 of 4 relations shown" in page and "facts" not in page.split("qkgraph-footer")[1][:300]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_fact_layer_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = write_html(fact_view_graph(), tmp_path / "facts.html", layer="facts")
    rendered, _ = rendered_in_chromium(path.as_uri())
    assert rendered["status"] == "rendered", rendered
    assert sorted(r["caption"] for r in rendered["relationships"]) == ["share", "win"]
    assert sorted(n["caption"] for n in rendered["nodes"]) == ["Marie Curie", "She", "the prize"]
