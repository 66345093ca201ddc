"""The Prefect ingest flow on the session's Prefect test server, against the library result."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ingest_flow_matches_the_library(prefect_harness, tmp_path):
    from flows.ingest import ingest_flow
    from pipeline.graph import KnowledgeGraph
    from pipeline.ingest import IngestSettings, analyze_documents, load_models
    from pipeline.sources import load_documents

    out = tmp_path / "flow.graphml"
    result = ingest_flow(paths=[str(REPO / "examples")], out=str(out), batch_size=2)
    assert result["summary"]["documents"] == 4 and result["skipped"] == []

    docs, _ = load_documents([REPO / "examples"])
    kg = KnowledgeGraph()
    for a in analyze_documents(docs, load_models(IngestSettings())):
        kg.add_analysis(a)
    direct = tmp_path / "direct.json"
    kg.to_node_link(direct)
    flow_graph = json.loads(out.with_suffix(".json").read_text())
    lib_graph = json.loads(direct.read_text())
    assert {n["id"] for n in flow_graph["nodes"]} == {n["id"] for n in lib_graph["nodes"]}
    assert sorted((e["source"], e["target"], e["key"], e["count"]) for e in flow_graph["edges"]) == sorted(
        (e["source"], e["target"], e["key"], e["count"]) for e in lib_graph["edges"]
    )
