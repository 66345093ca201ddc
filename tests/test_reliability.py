"""Reliability cases of the main job, each reproduced on real components (files, the model, Neo4j servers).

docs/reliability.md lists every case with its behaviour and the test that covers it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from conftest import TEST_PASSWORD
from typer.testing import CliRunner

from pipeline.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _ingest(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["ingest", *args], env=env, catch_exceptions=False)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    src = tmp_path / "docs"
    shutil.copytree(REPO / "examples", src)
    return src


def _neo4j_args(settings) -> list[str]:
    return ["--neo4j-uri", settings.uri, "--neo4j-user", settings.user]


def test_unchanged_is_asked_of_neo4j_not_of_the_graph_file(corpus, tmp_path, neo4j_db, neo4j_settings):
    """After the store lost its data (a restarted throwaway server), the same command writes it again."""
    from pipeline.store import clear_database, read_graph

    out = tmp_path / "graph.graphml"
    env = {"NEO4J_PASSWORD": TEST_PASSWORD}
    first = _ingest(str(corpus), "--out", str(out), *_neo4j_args(neo4j_settings), env=env)
    assert first.exit_code == 0, first.output
    clear_database(neo4j_db, neo4j_settings.database)  # the store is empty; the JSON at --out still has all 4
    again = _ingest(str(corpus), "--out", str(out), *_neo4j_args(neo4j_settings), env=env)
    assert again.exit_code == 0, again.output
    assert "4 unchanged" in again.output  # the file graph holds them
    assert "upserted into Neo4j" in again.output and "4 added" in again.output.split("upserted into Neo4j")[1]
    assert len(read_graph(neo4j_db, neo4j_settings.database).documents) == 4


def test_neo4j_going_down_mid_run_keeps_the_files_and_says_so(corpus, tmp_path):
    """The server dies after two documents: one clear error, the graph files still get every document."""
    from pipeline.ingest import IngestSettings, LocalAnalyser, load_models, run_ingest
    from pipeline.sinks import FileSink, Neo4jSink
    from pipeline.store.dev_server import Neo4jDevServer
    from pipeline.store.settings import Neo4jSettings
    from pipeline.text.sources import iter_documents

    server = Neo4jDevServer(heap_mb=384, pagecache_mb=32).start()
    try:
        inner = LocalAnalyser(load_models(IngestSettings()))

        class StopsTheServer:
            def __call__(self, documents):
                for i, item in enumerate(inner(documents)):
                    if i == 2:
                        server.stop()  # SIGTERM: the real server goes away between two documents
                    yield item

            def relation_labels(self):
                return inner.relation_labels()

        files = FileSink(tmp_path / "graph.graphml")
        sinks = [Neo4jSink(Neo4jSettings(uri=server.uri)), files]
        report = run_ingest(iter_documents([corpus]), sinks, StopsTheServer(), batch_size=1)
    finally:
        server.stop()
    assert set(report.sink_errors) == {"neo4j"}
    assert "lost the connection to Neo4j" in report.sink_errors["neo4j"]
    assert "rerun" in report.sink_errors["neo4j"]
    assert report.counts("neo4j")["added"] == 2
    assert report.counts("files")["added"] == 4
    assert nx.read_graphml(tmp_path / "graph.graphml").number_of_nodes() > 20
    from pipeline.graph import KnowledgeGraph

    assert len(KnowledgeGraph.from_node_link(tmp_path / "graph.json").documents) == 4


def test_a_foreign_or_truncated_graph_file_is_named_and_left_alone(corpus, tmp_path):
    out = tmp_path / "graph.graphml"
    assert _ingest(str(corpus), "--out", str(out)).exit_code == 0
    json_path = out.with_suffix(".json")
    cut = json_path.read_bytes()[:1000]
    for bad in (cut, b'{"some": "other tool"}', b"[1, 2, 3]"):
        json_path.write_bytes(bad)
        r = _ingest(str(corpus), "--out", str(out))
        assert r.exit_code == 2, r.output
        assert "is not a graph qkgraph can update" in r.output and "--fresh" in r.output
        assert "Traceback" not in r.output
        assert json_path.read_bytes() == bad  # nothing was overwritten
    fresh = _ingest(str(corpus), "--out", str(out), "--fresh")
    assert fresh.exit_code == 0 and "4 added" in fresh.output


def test_two_ingests_to_one_out_both_land(tmp_path):
    """Concurrent runs take turns on --out (a lock), so the second merges into the first's result."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i in range(3):
        (a / f"a{i}.txt").write_text(f"Ada Lovelace number {i} wrote notes on the Analytical Engine.\n")
        (b / f"b{i}.txt").write_text(f"Grace Hopper number {i} built a compiler for the Navy.\n")
    out = tmp_path / "out" / "graph.graphml"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pipeline.cli", "ingest", "--out", str(out)]
    procs = [
        subprocess.Popen([*cmd, str(src)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for src in (a, b)
    ]
    results = [p.communicate() for p in procs]
    for p, (stdout, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, stdout + stderr
    docs = json.loads(out.with_suffix(".json").read_text())["graph"]["documents"]
    assert set(docs) == {"a0.txt", "a1.txt", "a2.txt", "b0.txt", "b1.txt", "b2.txt"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "3-1"], "the range '3-1' is reversed"),
        (["--layers", "x"], "'x' is not a layer number"),
        (["--neo4j-uri", "http://127.0.0.1:7474"], "must start with bolt:// or neo4j://"),
        (["--neo4j-uri", "bolt://127.0.0.1:1", "--neo4j-database", "system"], "database 'system' holds Neo4j's own"),
    ],
)
def test_bad_options_exit_2_with_one_line_before_any_work(corpus, tmp_path, args, message):
    r = _ingest(str(corpus), "--out", str(tmp_path / "g.graphml"), *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "g.json").exists()


def test_an_out_that_cannot_be_written_fails_before_the_extraction(corpus, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    r = _ingest(str(corpus), "--out", str(folder))
    assert r.exit_code == 2 and "is a directory" in r.output
    if os.geteuid() != 0:  # root may write anywhere: the permission case only means something for users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        r = _ingest(str(corpus), "--out", str(locked / "g.graphml"))
        assert r.exit_code == 2 and "cannot write" in r.output


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    from pipeline.graph.atomic import atomic_write

    target = tmp_path / "graph.json"
    target.write_text("previous\n")

    def half_then_crash(handle) -> None:
        handle.write(b"half a gra")
        raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_crash)
    assert target.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.json"]  # no temporary file left behind


def test_an_overlong_mention_is_left_out_and_the_document_reaches_neo4j(tmp_path, neo4j_db, neo4j_settings):
    """A 10,000-character noun chunk used to fail the span-key index ("Property value is too large to index")."""
    from pipeline.store import read_graph
    from pipeline.text.spans import MAX_SPAN_CHARS

    src = tmp_path / "in"
    src.mkdir()
    (src / "blob.txt").write_text("The " + "big " * 2500 + "dog barked at Marie Curie in Paris.\n")
    (src / "good.txt").write_text("Ada Lovelace worked with Charles Babbage in London.\n")
    r = _ingest(
        str(src),
        "--out",
        str(tmp_path / "g.graphml"),
        *_neo4j_args(neo4j_settings),
        env={"NEO4J_PASSWORD": TEST_PASSWORD},
    )
    assert r.exit_code == 0, r.output
    stored = read_graph(neo4j_db, neo4j_settings.database)
    assert set(stored.documents) == {"blob.txt", "good.txt"}
    assert all(len(data["text"]) <= MAX_SPAN_CHARS for _, data in stored.g.nodes(data=True))
    assert any(data["text"] == "Paris" for _, data in stored.g.nodes(data=True))  # the rest of the blob is kept
