"""Prefect flows and deployments for qkgraph; each task wraps a plain library function from pipeline.

* ``flows.ingest``: the ingestion flow (``ingest_flow``), per-document analysis cache, retries.
* ``flows.scale_out``: the same flow with extraction on Dask (``ingest_flow_on_dask``, ``run_ingest``).
* ``flows.serve``: cron deployments served from one process (``serve_ingest``, ``serve_command``).

See docs/flows.md.
"""
