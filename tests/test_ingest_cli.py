"""`qkgraph ingest` end to end on real files: outputs, incremental updates, bad input, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import networkx as nx
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _ingest(*args: str):
    return runner.invoke(app, ["ingest", *args], catch_exceptions=False)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    src = tmp_path / "docs"
    shutil.copytree(REPO / "examples", src)
    return src


def test_ingest_examples_writes_graphml_json_and_html_and_updates_incrementally(corpus, tmp_path):
    out = tmp_path / "out" / "graph.graphml"
    html = tmp_path / "out" / "graph.html"
    r = _ingest(str(corpus), "--out", str(out), "--html", str(html))
    assert r.exit_code == 0, r.output
    assert "documents: 4 added, 0 replaced, 0 unchanged; skipped: 0" in r.output
    g = nx.read_graphml(out)
    assert g.number_of_nodes() > 20 and g.number_of_edges() > 5
    texts = {d["text"] for _, d in g.nodes(data=True)}
    assert {"Marie Curie", "Paris", "Priya Raman"} <= texts
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["edges"] and all(e["count"] >= 1 for e in data["edges"])
    assert html.exists() and html.stat().st_size > 1000

    before = out.with_suffix(".json").read_bytes()
    again = _ingest(str(corpus), "--out", str(out))
    assert again.exit_code == 0 and "0 added, 0 replaced, 4 unchanged" in again.output
    assert out.with_suffix(".json").read_bytes() == before  # nothing changed

    (corpus / "curie.txt").write_text("Marie Curie was born in Warsaw. She studied in Paris.\n", encoding="utf-8")
    changed = _ingest(str(corpus), "--out", str(out))
    assert changed.exit_code == 0 and "0 added, 1 replaced, 3 unchanged" in changed.output
    after = json.loads(out.with_suffix(".json").read_text())
    nobel = [n for n in after["nodes"] if "nobel" in n["id"]]
    assert not nobel, "nodes supported only by the old version of the document must go"


def test_a_rerun_with_other_settings_analyses_again_and_replaces(corpus, tmp_path):
    """Same files, another --threshold: every document is analysed again and replaced, not kept."""
    out = tmp_path / "out" / "graph.graphml"
    assert _ingest(str(corpus), "--out", str(out)).exit_code == 0
    first = json.loads(out.with_suffix(".json").read_text())
    assert first["graph"]["settings"]["threshold"] == 0.7
    assert first["graph"]["settings"]["analysis_format"] >= 4 and first["graph"]["settings"]["typed_set"]

    stricter = _ingest(str(corpus), "--out", str(out), "--threshold", "0.9")
    assert stricter.exit_code == 0 and "0 added, 4 replaced, 0 unchanged" in stricter.output, stricter.output
    second = json.loads(out.with_suffix(".json").read_text())
    assert second["graph"]["settings"]["threshold"] == 0.9
    relations = [e for e in second["edges"] if e.get("kind") == "relation"]
    assert all(e["score_max"] >= 0.9 for e in relations)
    assert len(relations) < len([e for e in first["edges"] if e.get("kind") == "relation"])
    again = _ingest(str(corpus), "--out", str(out), "--threshold", "0.9")
    assert "0 added, 0 replaced, 4 unchanged" in again.output


def test_bad_inputs_are_skipped_with_reasons_and_nothing_is_lost(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.txt").write_text("Ada Lovelace worked with Charles Babbage in London.", encoding="utf-8")
    (src / "empty.txt").write_text("   \n", encoding="utf-8")
    (src / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (src / "latin1.txt").write_bytes("Un café à Paris.".encode("latin-1"))
    (src / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    out = tmp_path / "g.graphml"
    r = _ingest(str(src), "--out", str(out))
    assert r.exit_code == 0
    assert "1 added" in r.output and "skipped: 4" in r.output
    for reason in ("empty", "binary", "encoding", "unsupported"):
        assert f"({reason})" in r.output
    assert "latin1.txt" in r.output and "iconv" in r.output
    strict = _ingest(str(src), "--out", str(tmp_path / "g2.graphml"), "--strict")
    assert strict.exit_code == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/folder"], "/no/such/folder"),
        (["{examples}", "--model", "no-such-org/no-such-model"], "unknown model 'no-such-org/no-such-model'"),
        (["{examples}", "--threshold", "1.5"], "threshold must be in [0, 1], got 1.5"),
        (["{examples}", "--layers", "0,9"], "layers must be in [0, 5]"),
        (["{examples}", "--html-layer", "edges"], "--html-layer must be one of all, relations, facts, got 'edges'"),
        (["{examples}", "--neo4j-uri", "bolt://127.0.0.1:1"], "cannot reach Neo4j at bolt://127.0.0.1:1"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(tmp_path, args, message):
    args = [a.replace("{examples}", str(REPO / "examples")) for a in args]
    out = tmp_path / "g.graphml"
    r = runner.invoke(app, ["ingest", *args, "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert not out.exists()  # nothing written


def test_ingest_reads_conllu_corpus(tmp_path, ewt_dev_path):
    # the first 12 documents of EWT dev as a real corpus
    lines, docs = [], 0
    for line in ewt_dev_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# newdoc"):
            docs += 1
            if docs > 12:
                break
        lines.append(line)
    subset = tmp_path / "ewt12.conllu"
    subset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = _ingest(str(subset), "--out", str(tmp_path / "ewt.graphml"), "--layers", "1-2")
    assert r.exit_code == 0, r.output
    assert "documents: 12 added" in r.output
    data = json.loads((tmp_path / "ewt.json").read_text())
    assert len(data["graph"]["documents"]) == 12


def test_ingest_into_neo4j_matches_the_file_graph(neo4j_db, neo4j_settings, tmp_path):
    from pipeline.graph import KnowledgeGraph
    from pipeline.store import read_graph

    out = tmp_path / "g.graphml"
    args = [
        "--neo4j-uri",
        neo4j_settings.uri,
        "--neo4j-user",
        neo4j_settings.user,
        "--neo4j-password",
        neo4j_settings.password,
        "--neo4j-database",
        neo4j_settings.database,
    ]
    r = _ingest(str(REPO / "examples"), "--out", str(out), *args)
    assert r.exit_code == 0, r.output
    assert "upserted into Neo4j" in r.output and neo4j_settings.password not in r.output
    stored = read_graph(neo4j_db, neo4j_settings.database)
    local = KnowledgeGraph.from_node_link(out.with_suffix(".json"))
    assert set(stored.g.nodes) == set(local.g.nodes)
    assert set(stored.g.edges(keys=True)) == set(local.g.edges(keys=True))
    n_facts = 0
    for u, v, k, d in local.g.edges(keys=True, data=True):
        assert stored.g.edges[u, v, k]["count"] == d["count"]
        if d["kind"] == "fact":
            # facts from the typed arcs reach Neo4j with their predicate, probability and units
            n_facts += 1
            assert k == "fact:" + d["predicate"] and stored.g.edges[u, v, k]["predicate"] == d["predicate"]
            assert stored.g.edges[u, v, k]["probability_max"] == d["probability_max"] >= 0.5
            assert d["units"] and all(unit.startswith("qk:") for unit in d["units"])
            continue
        assert stored.g.edges[u, v, k]["unit"] == d["unit"] and d["unit"].startswith(f"qk:{k}:")
    assert n_facts >= 5
    # the typed path end to end: shipped artifact -> extractor -> graph -> Neo4j relationship types
    from pipeline.store.schema import relationship_type
    from pipeline.types import DEPENDENCY_RELATIONS

    relation_keys = [k for _, _, k, kind in local.g.edges(keys=True, data="kind") if kind == "relation"]
    assert len(relation_keys) >= 5 and all(k in DEPENDENCY_RELATIONS for k in relation_keys)
    from collections import Counter

    from pipeline.store.named import run_named_query

    rows = run_named_query(neo4j_db, neo4j_settings.database, "typed_relation_types")
    per_relation = Counter(relation_keys)
    assert {r["relation"]: r["edges"] for r in rows} == dict(per_relation)
    for row in rows:
        assert row["relationship"] == relationship_type(row["relation"]) != "RELATES"
        edges = [d for _, _, k, d in local.g.edges(keys=True, data=True) if k == row["relation"]]
        assert row["max_probability"] == max(d["score_max"] for d in edges) >= 0.7
        assert row["evidence"] == sum(d["count"] for d in edges)
        assert set(row["units"]) == {d["unit"] for d in edges}
    # a second run changes nothing in Neo4j either
    again = _ingest(str(REPO / "examples"), "--out", str(out), *args)
    assert "4 unchanged" in again.output
    assert set(read_graph(neo4j_db, neo4j_settings.database).g.edges(keys=True)) == set(local.g.edges(keys=True))


def test_eval_command_prints_json_last_line(ewt_dev_path):
    r = runner.invoke(app, ["eval", str(ewt_dev_path), "--max-sentences", "80", "--json"])
    assert r.exit_code == 0, r.output
    last = json.loads(r.output.strip().splitlines()[-1])
    assert {"macro", "accuracy", "calibration"} <= set(last)
    assert {"offset", "attention", "logit", "qk"} <= set(last["macro"])
