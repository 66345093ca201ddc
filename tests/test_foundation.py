"""The foundation: the package imports, models load offline, spaCy parses, Neo4j round-trips."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch


def test_package_imports_and_cli_help():
    import flows  # noqa: F401
    import pipeline

    assert pipeline.__version__
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "neo4j-dev" in out


def test_default_model_loads_offline_and_returns_hidden_states_and_attentions(default_model_dir):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    model = AutoModel.from_pretrained(default_model_dir, attn_implementation="eager").eval()
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    enc = tok(["Marie Curie worked in Paris."], return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True, output_attentions=True)
    n = enc["input_ids"].shape[1]
    assert len(out.hidden_states) == 7 and out.hidden_states[-1].shape == (1, n, 384)
    assert len(out.attentions) == 6 and out.attentions[0].shape == (1, 12, n, n)
    # attention rows are distributions
    torch.testing.assert_close(out.attentions[3].sum(-1), torch.ones(1, 12, n))


def test_spacy_pipeline_parses_entities_noun_chunks_dependencies():
    from pipeline.text.nlp import load_spacy

    doc = load_spacy()("Marie Curie founded the Radium Institute in Paris in 1909.")
    ents = {(e.text, e.label_) for e in doc.ents}
    assert ("Paris", "GPE") in ents
    assert any(e.text == "Marie Curie" for e in doc.ents)
    assert "the Radium Institute" in [nc.text for nc in doc.noun_chunks]
    founded = next(t for t in doc if t.text == "founded")
    assert founded.dep_ == "ROOT"
    assert any(c.dep_ == "nsubj" and c.text == "Curie" for c in founded.children)


def test_neo4j_roundtrips_a_node_through_a_parameterised_query(neo4j_db, neo4j_settings):
    from pipeline.store import server_info

    info = server_info(neo4j_db, neo4j_settings.database)
    assert info["version"].startswith("5.26") and info["edition"] == "community"
    props = {"name": 'Robert"); DROP ALL //', "weight": 0.25, "tags": ["a", "b"]}
    neo4j_db.execute_query("CREATE (p:Probe) SET p = $props", props=props, database_=neo4j_settings.database)
    records, _, _ = neo4j_db.execute_query(
        "MATCH (p:Probe) RETURN properties(p) AS props", database_=neo4j_settings.database
    )
    assert [r["props"] for r in records] == [props]


def test_wrong_password_gives_one_line_error(neo4j_server):
    from pipeline.errors import Neo4jConnectionError
    from pipeline.store import connect
    from pipeline.store.settings import Neo4jSettings

    bad = Neo4jSettings(uri=neo4j_server.uri, user="neo4j", password="not-the-password")
    with pytest.raises(Neo4jConnectionError) as err:
        connect(bad)
    message = str(err.value)
    assert "rejected the credentials" in message and "\n" not in message
    assert "not-the-password" not in message


def test_unreachable_uri_gives_one_line_error():
    from pipeline.errors import Neo4jConnectionError
    from pipeline.store import connect
    from pipeline.store.dev_server import free_port
    from pipeline.store.settings import Neo4jSettings

    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(Neo4jConnectionError) as err:
        connect(Neo4jSettings(uri=uri), timeout_s=3.0)
    assert str(err.value).startswith(f"cannot reach Neo4j at {uri}") and "\n" not in str(err.value)


def test_cli_check_neo4j_reports_bad_password_without_traceback(neo4j_server):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "check-neo4j",
            "--neo4j-uri",
            neo4j_server.uri,
            "--neo4j-user",
            "neo4j",
            "--neo4j-password",
            "wrong-password",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "rejected the credentials" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_settings_repr_hides_password():
    from pipeline.store.settings import Neo4jSettings

    s = Neo4jSettings(uri="bolt://x:7687", user="neo4j", password="s3cret-value")
    assert "s3cret-value" not in repr(s) and "***" in repr(s)
