"""Reliability cases through the real `qkgraph ingest` (real files, spaCy and the model): docs/reliability.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
# One layer and one relation type keep the model's share of these tests small; the inputs are the point.
FAST = ("--layers", "0", "--top-k", "1", "--threshold", "0.3")
# XML 1.0 Char: tab, newline, carriage return, then U+0020..U+D7FF, U+E000..U+FFFD, U+10000 and up.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _ingest(*args: str):
    return runner.invoke(app, ["ingest", *args, *FAST], catch_exceptions=False)


def _documents(out: Path) -> dict[str, str]:
    return json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["graph"]["documents"]


def test_document_over_a_million_characters_is_skipped_and_the_run_completes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.txt").write_text("Ada Lovelace worked with Charles Babbage in London.", encoding="utf-8")
    big = src / "big.txt"
    big.write_text("word " * 240_000, encoding="utf-8")  # 1,200,000 characters: over spaCy's limit
    out = tmp_path / "g.graphml"
    r = _ingest(str(src), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "1 added" in r.output and "skipped: 1 {'too_large': 1}" in r.output
    assert f"skipped {big} (too_large) 1200000 characters, limit 1000000" in r.output
    assert set(_documents(out)) == {"good.txt"}
    assert "Ada Lovelace" in {d["text"] for _, d in nx.read_graphml(out).nodes(data=True)}


def test_same_names_under_two_roots_and_a_colliding_jsonl_id_lose_nothing_silently(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.txt").write_text("Marie Curie lived in Paris.", encoding="utf-8")
    (b / "x.txt").write_text("Alan Turing worked in Manchester.", encoding="utf-8")
    records = b / "y.jsonl"
    records.write_text(
        json.dumps({"id": "a/x.txt", "text": "Grace Hopper wrote a compiler."})
        + "\n"
        + json.dumps({"id": "r1", "text": "Ada Lovelace met Charles Babbage."})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "g.graphml"
    r = _ingest(str(a), str(b), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "documents: 3 added, 0 replaced, 0 unchanged; skipped: 1 {'duplicate_id': 1}" in r.output
    assert f"skipped {records}:1 (duplicate_id)" in r.output and str(a / "x.txt") in r.output
    assert set(_documents(out)) == {"a/x.txt", "b/x.txt", "r1"}


def test_xml_illegal_characters_never_reach_the_graphml(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    head = "Ada Lovelace met Charles Babbage in London. " * 200  # 8,800 characters: past the binary sniff
    (src / "late-nul.txt").write_text(head + "Marie\x00Curie lived in\x00Paris.", encoding="utf-8")
    (src / "ansi.txt").write_text("\x1b[31mAlan Turing\x1b[0m worked in \x1b[1mManchester\x1b[0m.\f", encoding="utf-8")
    (src / "d.jsonl").write_text(
        json.dumps({"id": "rec\u00001", "text": "Grace\u0000Hopper wrote\u000b a compiler in Philadelphia.\ud800"})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "g.graphml"
    r = _ingest(str(src), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "3 added" in r.output and "skipped: 0" in r.output
    g = nx.read_graphml(out)  # "not well-formed" before the fix
    texts = [str(d.get("text", "")) for _, d in g.nodes(data=True)]
    assert texts and not [t for t in texts if XML_ILLEGAL.search(t)]
    assert not [n for n in g.nodes if XML_ILLEGAL.search(str(n))]
    assert set(_documents(out)) == {"late-nul.txt", "ansi.txt", "rec 1"}
    assert any("Turing" in t for t in texts)


def test_summary_counts_replaced_xml_illegal_characters(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text(
        json.dumps({"id": "a", "text": "Ada\u0000Lovelace met\u0000Babbage."})
        + "\n"
        + json.dumps({"id": "b", "text": "\x1b[1mAlan Turing\x1b[0m."})
        + "\n"
        + json.dumps({"id": "c", "text": "Nothing to replace."})
        + "\n",
        encoding="utf-8",
    )
    r = _ingest(str(src), "--out", str(tmp_path / "g.graphml"))
    assert r.exit_code == 0, r.output
    assert "xml-illegal characters replaced: 4 in 2 document(s)" in r.output


def test_the_ingest_limit_is_the_sources_limit():
    import pipeline.ingest
    import pipeline.text.sources

    # The very same object, not an equal literal: one definition, so the two can never drift apart again.
    assert pipeline.ingest.MAX_DOCUMENT_CHARS is pipeline.text.sources.MAX_DOCUMENT_CHARS


def test_an_overlong_document_id_is_skipped_by_name(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text(
        json.dumps({"id": "x" * 9000, "text": "Ada Lovelace met Charles Babbage."})
        + "\n"
        + json.dumps({"id": "fine", "text": "Alan Turing worked at Bletchley Park."})
        + "\n",
        encoding="utf-8",
    )
    r = _ingest(str(src), "--out", str(tmp_path / "g.graphml"))
    assert r.exit_code == 0, r.output
    assert "1 added" in r.output and "document id of 9,000 characters" in r.output
    assert "d.jsonl:1" in r.output  # the line, named
