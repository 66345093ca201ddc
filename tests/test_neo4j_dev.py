"""`qkgraph neo4j-dev` and Neo4jDevServer with the real launcher: startup errors and a kept --home."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import QkgraphError
from pipeline.store.dev_server import Neo4jDevServer, free_port


def neo4j_dev_cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """`qkgraph neo4j-dev ARGS` in a child process, as a user runs it."""
    env = dict(os.environ)
    env.pop("NEO4J_DEV_PASSWORD", None)
    if password is not None:
        env["NEO4J_DEV_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "neo4j-dev", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Neo4j ready" not in proc.stdout + proc.stderr and "QKGRAPH_NEO4J_READY" not in proc.stdout, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("qkgraph: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_port_zero_is_a_one_line_error():
    assert_one_line_error(neo4j_dev_cli("--port", "0"), "--port must be given, 1..65535")


def test_foreign_non_empty_home_is_refused_and_left_alone(tmp_path: Path):
    home = tmp_path / "someone-elses"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    proc = neo4j_dev_cli("--port", str(free_port()), "--home", str(home))
    assert_one_line_error(proc, "is not empty and not a qkgraph Neo4j home")
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]


def test_short_password_is_a_one_line_error(tmp_path: Path):
    proc = neo4j_dev_cli("--port", str(free_port()), "--home", str(tmp_path / "h"), password="short")
    assert_one_line_error(proc, "at least 8 characters")


def test_port_in_use_is_a_one_line_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = neo4j_dev_cli("--port", str(port))
    assert_one_line_error(proc, f"--port {port}: port already in use")


def test_busy_http_port_is_a_one_line_error_from_the_api():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(QkgraphError) as err:
            Neo4jDevServer(http_port=port).start()
    assert f"--http-port {port}: port already in use" in str(err.value) and "\n" not in str(err.value)


def test_home_is_kept_between_runs(tmp_path: Path):
    """Stop and start on the same --home: the graph is still there (and the password still works)."""
    from neo4j import GraphDatabase

    home = tmp_path / "store"
    password = "kept-home-password"
    with Neo4jDevServer(home=home, password=password) as server:
        with GraphDatabase.driver(server.uri, auth=("neo4j", password)) as driver:
            driver.execute_query("CREATE (:Kept {name: 'survives restart'})", database_="neo4j")
    assert home.is_dir() and (home / ".qkgraph-neo4j-home").is_file()
    with Neo4jDevServer(home=home, password=password) as server:
        with GraphDatabase.driver(server.uri, auth=("neo4j", password)) as driver:
            records, _, _ = driver.execute_query("MATCH (n:Kept) RETURN n.name AS name", database_="neo4j")
    assert [r["name"] for r in records] == ["survives restart"]
    assert home.is_dir()
