"""Prefect flows and deployments for qkgraph: thin wrappers around ``pipeline.ingest.run_ingest``.

* ``flows.ingest``: the ingestion flow (``ingest_flow``).
* ``flows.analysis``: discovery, the analyse-batch task, the cached, ordered analyser.
* ``flows.cache``: the per-document analysis cache.
* ``flows.neo4j_tasks``: Neo4j tasks with retries on transient errors, the flow's Neo4j sink.
* ``flows.scale_out``: the same flow with extraction on Dask (``ingest_flow_on_dask``, ``run_flow_once``).
* ``flows.serve``: cron deployments served from one process (``serve_ingest``, ``serve_command``).
* ``python -m flows SOURCES...``: run the flow once.

See docs/flows.md.
"""
