"""Scheduling: the serve deployment (flows/serve.py), prefect.yaml through the real Prefect CLI, docker/ files.

Docker itself cannot run here; docker/ is checked for structure (YAML, services, healthchecks, auth).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "not-a-parameter-8472"


def test_serve_deployment_is_a_cron_schedule_without_the_password(prefect_harness, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client

    from flows.serve import build_deployment

    monkeypatch.setenv("NEO4J_PASSWORD", PASSWORD)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    deployment = build_deployment(
        [str(incoming)],
        "0 2 * * *",
        name="test-nightly",
        timezone="Europe/Berlin",
        out=str(tmp_path / "graph.graphml"),
        neo4j_uri="bolt://127.0.0.1:7687",
        neo4j_password_secret="nightly-pw",
    )
    assert deployment.parameters["sources"] == [str(incoming)]
    assert deployment.parameters["neo4j_password_secret"] == "nightly-pw"
    assert PASSWORD not in json.dumps(deployment.parameters)
    deployment_id = deployment.apply()  # registered on the test server, as serve() does first
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert stored.name == "test-nightly" and stored.global_concurrency_limit.limit == 1
    assert [(s.schedule.cron, s.schedule.timezone) for s in stored.schedules] == [("0 2 * * *", "Europe/Berlin")]
    assert stored.parameters["sources"] == [str(incoming)]
    assert PASSWORD not in json.dumps(stored.parameters)


def test_dask_flavours_use_the_dask_task_runner():
    from prefect_dask import DaskTaskRunner

    from flows.scale_out import dask_task_runner, ingest_flow_dask, ingest_flow_on_dask

    remote = ingest_flow_on_dask("tcp://10.0.0.5:8786").task_runner
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    local = dask_task_runner(None, n_workers=3)
    assert local.address is None and local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["threads_per_worker"] == 1
    assert isinstance(ingest_flow_dask.task_runner, DaskTaskRunner) and ingest_flow_dask.name == "qkgraph-ingest"


def test_serve_command_rejects_bad_arguments_before_serving(tmp_path):
    import typer
    from typer.testing import CliRunner

    from flows.serve import serve_command

    app = typer.Typer()
    app.command()(serve_command)
    runner = CliRunner()
    bad_cron = runner.invoke(app, ["--source", str(tmp_path), "--cron", "every night"])
    assert bad_cron.exit_code == 2 and "cron" in bad_cron.output
    missing = runner.invoke(app, ["--source", str(tmp_path / "nope"), "--cron", "0 2 * * *"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_prefect_yaml_deploys_both_deployments_to_a_process_pool(prefect_harness, tmp_path):
    """The documented commands, run for real against the test server: work-pool create, deploy --all."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    shutil.copytree(REPO / "flows", project / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "QKGRAPH_SOURCE": str(tmp_path / "incoming"),
        "QKGRAPH_OUT": str(tmp_path / "out" / "graph.graphml"),
    }
    prefect = [sys.executable, "-m", "prefect"]
    for args in (
        ["work-pool", "create", "qkgraph", "--type", "process", "--overwrite"],
        ["--no-prompt", "deploy", "--all"],
    ):
        done = subprocess.run(prefect + args, cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (project / "prefect.yaml").read_text() == (REPO / "prefect.yaml").read_text()  # not rewritten

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("qkgraph-ingest/nightly")
        dask = client.read_deployment_by_name("qkgraph-ingest/nightly-dask")
    assert nightly.work_pool_name == "qkgraph" and dask.work_pool_name == "qkgraph"
    assert nightly.entrypoint == "flows/ingest.py:ingest_flow"
    assert dask.entrypoint == "flows/scale_out.py:ingest_flow_dask"
    assert [(s.schedule.cron, s.active) for s in nightly.schedules] == [("0 2 * * *", True)]
    assert [(s.schedule.cron, s.active) for s in dask.schedules] == [("0 2 * * *", False)]
    assert nightly.parameters["sources"] == [str(tmp_path / "incoming")]
    assert nightly.parameters["out"] == str(tmp_path / "out" / "graph.graphml")
    # the default pull step: the folder `prefect deploy` ran in
    assert nightly.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}]


# ── docker/ (structure only: no Docker here) ─────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())


def test_compose_services_healthchecks_and_auth(compose):
    services = compose["services"]
    assert {"neo4j", "prefect-server", "worker", "ingest"} <= set(services)
    assert services["neo4j"]["image"].startswith("neo4j:5.26")
    assert services["neo4j"]["environment"]["NEO4J_AUTH"].startswith("neo4j/${NEO4J_PASSWORD")
    assert services["prefect-server"]["image"].startswith("prefecthq/prefect:3.9.1")
    for name in ("neo4j", "prefect-server", "worker"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("worker", "ingest"):
        env = services[name]["environment"]
        assert env["NEO4J_URI"] == "bolt://neo4j:7687" and env["PREFECT_API_URL"].startswith(
            "http://prefect-server:4200"
        )
        assert env["NEO4J_PASSWORD"].startswith("${NEO4J_PASSWORD")
        deps = services[name]["depends_on"]
        assert deps["neo4j"]["condition"] == deps["prefect-server"]["condition"] == "service_healthy"
    assert services["worker"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert "--pool qkgraph" in " ".join(services["worker"]["command"])
    assert services["ingest"]["profiles"] == ["ingest"] and services["ingest"]["restart"] == "no"
    named = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in named or source.startswith(("${", ".", "/")), volume


def test_dockerfile_copies_what_the_image_needs():
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu" in text and "requirements/models.txt" in text
    for path in ("pipeline/", "flows/", "prefect.yaml", "pyproject.toml"):
        assert path in text, path
        assert (REPO / path.rstrip("/")).exists(), path
    # A real (non-editable) install: the saved queries and the Neo4j launcher travel as package data.
    assert "pip install --no-deps . " in text
    env_example = (REPO / "docker" / ".env.example").read_text()
    assert "NEO4J_PASSWORD=" in env_example
