"""A non-editable wheel, installed outside the checkout, gives a working ``qkgraph ingest`` and ``run_named_query``.

The wheel is built from this checkout and installed (``--no-deps``) into a fresh virtual environment;
its dependencies come from the test venv's site-packages through a ``.pth`` line (a path in a .pth file
does not run the .pth files inside it, so the checkout's editable install is not in play). Everything
runs from a temporary directory, so nothing is found through the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TEST_PASSWORD


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = dist.glob("qkgraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "pipeline/store/cypher/strongest_relations.cypher" in names
    assert "pipeline/store/launcher/pom.xml" in names
    assert "pipeline/store/launcher/src/main/java/qkgraph/Neo4jDev.java" in names
    assert any(n.startswith("pipeline/data/labels-") for n in names)

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Without PYTHONPATH: a checkout on it (with the qkgraph.egg-info the build leaves) would make pip
    # think qkgraph is installed already.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        env=_env(root),
    )
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=_env(root),
    ).stdout.strip()
    assert (Path(site) / "pipeline" / "__init__.py").is_file(), "the wheel did not install"
    (Path(site) / "qkgraph-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HOME=os.environ.get("HOME", str(tmp)))
    return env


def test_the_wheel_installs_a_working_ingest_and_named_queries(
    wheel_venv, tmp_path, neo4j_server, neo4j_db, neo4j_settings
):
    work = tmp_path / "elsewhere"
    shutil.copytree(REPO_ROOT / "examples", work / "docs")
    env = _env(tmp_path)
    py = wheel_venv / "bin" / "python"
    where = subprocess.run(
        [str(py), "-c", "import pipeline; print(pipeline.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert where.startswith(str(wheel_venv)), where  # the installed wheel, not the checkout

    env_neo = {**env, "NEO4J_PASSWORD": TEST_PASSWORD}
    done = subprocess.run(
        [str(wheel_venv / "bin" / "qkgraph"), "ingest", "docs", "--out", "out/graph.graphml",
         "--neo4j-uri", neo4j_server.uri, "--neo4j-user", "neo4j"],
        cwd=work, env=env_neo, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "4 added" in done.stdout and (work / "out" / "graph.graphml").is_file()
    assert "Traceback" not in done.stderr

    script = (
        "import json, sys\n"
        "from pipeline.store import Neo4jSettings, connect, query_names, run_named_query\n"
        "s = Neo4jSettings(uri=sys.argv[1], user='neo4j', password=sys.argv[2], database='neo4j')\n"
        "with connect(s) as d:\n"
        "    print(json.dumps({'names': query_names(), 'stats': run_named_query(d, s.database, 'graph_stats')}, default=str))\n"
    )
    done = subprocess.run(
        [str(py), "-c", script, neo4j_server.uri, TEST_PASSWORD], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "strongest_relations" in result["names"] and "graph_stats" in result["names"]
    assert result["stats"][0]["documents"] == 4 and result["stats"][0]["relations"] > 0
