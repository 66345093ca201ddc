"""Neo4j Browser for real: `neo4j-dev --browser`, `qkgraph ingest` into it, log in and run a saved query.

Drives headless Chromium over the DevTools protocol (tests/chromium_cdp.py): the login form and the
query editor are filled the way a user fills them (focus, then typed text), and what the result
frame shows is read back from the page. The screenshot is kept under pytest's tmp_path; set
QKGRAPH_BROWSER_SCREENSHOT=path to also write it there (docs/neo4j-browser.png is made that way).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from chromium_cdp import CHROMIUM, DevToolsPipe

from pipeline.store import RELATIONSHIP_TYPES, load_query
from pipeline.store.dev_server import Neo4jDevServer

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "browser-test-password"
QUERY = "relation_graph"
#: Browser settings for a readable picture: draw only the relationships the query returns (not every
#: EVIDENCE edge between the shown nodes too), caption spans by text and relations (RELATES and the
#: typed relationship types, OBJ...) by label.
SETUP = [
    ":config autoComplete: false",
    ":style node.Span {caption: '{text}';} "
    + " ".join(f"relationship.{t} {{caption: '{{label}}';}}" for t in ["RELATES", *RELATIONSHIP_TYPES.values()]),
]


def header_params(name: str) -> list[str]:
    """The ``:param`` lines a saved query's header tells Browser users to run first."""
    text = (REPO_ROOT / "queries" / f"{name}.cypher").read_text(encoding="utf-8")
    return re.findall(r"^//\s+(:param .+)$", text, re.M)


class BrowserPage:
    """One Chromium tab on a URL, with the few DevTools calls the test needs."""

    def __init__(self, url: str, window: tuple[int, int] = (1300, 1000)) -> None:
        self.browser = DevToolsPipe(window, timeout_s=600.0)
        target = self.browser.call("Target.createTarget", {"url": url})["targetId"]
        self.session = self.browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        # Twice the pixels: Browser's node captions are small, the picture should stay readable.
        metrics = {"width": window[0], "height": window[1], "deviceScaleFactor": 2, "mobile": False}
        self.browser.call("Emulation.setDeviceMetricsOverride", metrics, self.session)

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page (awaiting a promise) and return its JSON value."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        reply = self.browser.call("Runtime.evaluate", params, self.session)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, what: str, wait_s: float = 240.0) -> Any:
        """Poll ``expression`` until it is truthy; fail naming ``what`` (with the page's text) if it never is."""
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.5)
        text = self.js("document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise AssertionError(f"Browser never showed {what}; the page says:\n{text}")

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` as keyboard input (React and Monaco see real input events)."""
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.browser.call("Input.insertText", {"text": text}, self.session)

    def click(self, selector: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.browser.call("Page.captureScreenshot", {"format": "png"}, self.session)["data"])

    def close(self) -> None:
        self.browser.close()


def clear_field(page: BrowserPage, selector: str) -> None:
    """Select the field's text so the next typed input replaces it (Browser pre-fills the connect form)."""
    page.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.select(); }})()")


def run_in_editor(page: BrowserPage, text: str) -> None:
    """Type one command into Browser's main editor and run it, as Ctrl+Enter / the Run button does."""
    editor = "[data-testid=activeEditor] textarea"
    page.wait_for(f"!!document.querySelector({json.dumps(editor)})", "the query editor")
    page.type_into(editor, text)
    page.click("[data-testid=editor-Run]")


DISMISS_NOTICE_JS = """
(() => {
  const text = Array.from(document.querySelectorAll('body *'))
    .find(e => e.children.length === 0 && e.textContent.startsWith('To help make Neo4j Browser better'));
  for (let el = text; el; el = el.parentElement) {
    const button = el.querySelector('button');
    if (button) { button.click(); return true; }
  }
  return false;
})()
"""

#: Clicks the first control in the newest frame whose attributes mention ``%s`` (e.g. zoom-to-fit).
CLICK_CONTROL_JS = """
(() => {
  const frame = document.querySelector('[data-testid=frame]');
  const el = Array.from(frame.querySelectorAll('*'))
    .find(e => Array.from(e.attributes).some(a => a.value.includes(%s)));
  if (el) { (el.closest('button') || el).dispatchEvent(new MouseEvent('click', {bubbles: true})); }
  return !!el;
})()
"""

FRAME_STATUS_JS = """
(() => {
  const frames = document.querySelectorAll('[data-testid=frame]');
  if (!frames.length) return null;
  const frame = frames[0];  // newest frame is on top
  const text = frame.innerText;
  const m = text.match(/Displaying (\\d+) nodes, (\\d+) relationships/);
  if (!m) return null;
  const captions = Array.from(frame.querySelectorAll('svg text')).map(t => t.textContent.trim()).filter(Boolean);
  return {nodes: +m[1], relationships: +m[2], captions: captions,
          svg_nodes: frame.querySelectorAll('svg g.node').length,
          svg_relationships: frame.querySelectorAll('svg g.relationship').length,
          command: (frame.querySelector('[data-testid=frameCommand]') || {}).innerText || ''};
})()
"""


def browse_query(
    browser_url: str, bolt_uri: str, password: str, query: str, params: list[str]
) -> tuple[dict[str, Any], bytes]:
    """Log in through Browser's connect form, run the ``:param`` commands, then ``query``.

    Returns what the newest result frame shows and a PNG of the page.
    """
    page = BrowserPage(browser_url)
    try:
        page.wait_for("!!document.querySelector('[data-testid=boltaddress]')", "its connect form")
        clear_field(page, "[data-testid=boltaddress]")
        page.type_into("[data-testid=boltaddress]", bolt_uri)
        clear_field(page, "[data-testid=username]")
        page.type_into("[data-testid=username]", "neo4j")
        page.type_into("[data-testid=password]", password)
        page.click("[data-testid=connect]")
        page.wait_for("document.body.innerText.includes('You are connected as user')", "that the login worked")
        for command in [*SETUP, *params]:
            # :param, not :params with a JSON map: Browser reads JSON numbers as floats, Cypher
            # after => keeps 50 an integer (LIMIT refuses 50.0).
            frames = page.js("document.querySelectorAll('[data-testid=frame]').length")
            run_in_editor(page, command)
            page.wait_for(f"document.querySelectorAll('[data-testid=frame]').length > {frames}", command)
        run_in_editor(page, query)
        frame = page.wait_for(
            f"(() => {{ const f = {FRAME_STATUS_JS}; return f && f.svg_nodes === f.nodes && f.captions.length ? f : null; }})()",
            "a drawn graph in the result frame",
        )
        # Close the usage-data notice above the frames, if shown, so the picture is the graph.
        page.js(DISMISS_NOTICE_JS)
        time.sleep(3)  # let the force layout settle, then fit it to the frame for the picture
        page.js(CLICK_CONTROL_JS % json.dumps("zoom-to-fit"))
        time.sleep(1)
        return frame, page.screenshot()
    finally:
        page.close()


def ingest_examples(server: Neo4jDevServer, out: Path) -> str:
    """`qkgraph ingest examples/ --neo4j-uri ...` as the README tells a new user; returns its stdout."""
    env = {**os.environ, "NEO4J_USER": "neo4j", "NEO4J_PASSWORD": PASSWORD, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pipeline.cli", "ingest", str(REPO_ROOT / "examples"), "--neo4j-uri", server.uri]
    proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_browser_shows_the_ingested_graph(tmp_path: Path) -> None:
    from neo4j import GraphDatabase

    with Neo4jDevServer(browser=True, password=PASSWORD) as server:
        assert server.browser_url and server.browser_url.endswith("/browser/")
        assert "upserted into Neo4j" in ingest_examples(server, tmp_path / "graph.graphml")
        query = load_query(QUERY)
        # What the same saved query returns over Bolt, with the header's :param values.
        with GraphDatabase.driver(server.uri, auth=("neo4j", PASSWORD)) as driver:
            rows, _, _ = driver.execute_query(query, entity=None, limit=50, database_="neo4j")
        assert rows, "the ingest wrote no RELATES edges"
        texts = {n["text"] for r in rows for n in r["p"].nodes}
        nodes = {n.element_id for r in rows for n in r["p"].nodes}
        labels = {r["label"] for r in rows}

        frame, png = browse_query(server.browser_url, server.uri, PASSWORD, query, header_params(QUERY))

    shot = tmp_path / "neo4j-browser.png"
    shot.write_bytes(png)
    print(f"screenshot: {shot}")
    if os.environ.get("QKGRAPH_BROWSER_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["QKGRAPH_BROWSER_SCREENSHOT"])
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    # The result frame draws exactly the query's nodes and relationships...
    assert (frame["nodes"], frame["relationships"]) == (len(nodes), len(rows)), frame
    assert (frame["svg_nodes"], frame["svg_relationships"]) == (len(nodes), len(rows)), frame
    # ...captioned with the spans' texts and the relations' labels (Browser shortens long captions).
    captions = set(frame["captions"])
    assert len(texts & captions) >= len(texts) // 2, (sorted(texts), sorted(captions))
    assert labels & captions, (labels, captions)


if __name__ == "__main__":  # manual: python tests/test_neo4j_browser.py BROWSER_URL BOLT_URI PASSWORD OUT.png
    url, bolt, pw, out = sys.argv[1:5]
    frame, png = browse_query(url, bolt, pw, load_query(QUERY), header_params(QUERY))
    Path(out).write_bytes(png)
    print(json.dumps(frame, indent=1)[:2000])
