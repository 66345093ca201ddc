"""Scale-out: the same ingest flow with extraction on Dask (prefect-dask's DaskTaskRunner).

* ``dask_task_runner(address)`` uses an existing Dask cluster (``tcp://scheduler:8786``); without an
  address it starts a ``distributed.LocalCluster`` of ``n_workers`` processes with one thread each
  for the flow run and closes it afterwards.
* Only ``analyse-batch`` runs on the workers (each worker loads the model once, then keeps it:
  ``flows.analysis.get_models``). Upserts to Neo4j and the file output stay in the flow process, in
  document order (see docs/flows.md: one writer, no deadlocks, same graph as one process).
* Task runs on Dask workers report to the Prefect API of the flow run. Point the flow process at a
  Prefect server (``PREFECT_API_URL``); without one Prefect starts a temporary ("ephemeral")
  server, which is slow to start and only lives as long as that process.

``ingest_flow_dask`` is a module-level flow object for ``prefect.yaml`` (entrypoint
``flows/scale_out.py:ingest_flow_dask``): it reads QKGRAPH_DASK_ADDRESS (an existing scheduler) or
QKGRAPH_DASK_WORKERS (LocalCluster size, default 2) when the module is imported, i.e. on the worker
that runs the flow.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flows.ingest import ingest_flow

log = logging.getLogger("qkgraph.flows")

DASK_ADDRESS_ENV = "QKGRAPH_DASK_ADDRESS"
DASK_WORKERS_ENV = "QKGRAPH_DASK_WORKERS"


def dask_task_runner(address: str | None = None, n_workers: int = 2, threads_per_worker: int = 1) -> Any:
    """A DaskTaskRunner on the cluster at ``address``, or on a new LocalCluster of ``n_workers``."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": n_workers,
            "threads_per_worker": threads_per_worker,  # torch in a worker uses one thread too
            "processes": True,
            "dashboard_address": None,
        },
    )


def ingest_flow_on_dask(address: str | None = None, n_workers: int = 2) -> Any:
    """``ingest_flow`` with a DaskTaskRunner (same name and parameters)."""
    return ingest_flow.with_options(task_runner=dask_task_runner(address, n_workers))


def run_flow_once(*, dask_address: str | None = None, dask_workers: int = 0, **parameters: Any) -> dict[str, Any]:
    """Run the ingest flow once: on Dask when ``dask_address`` or ``dask_workers`` > 0, else in-process."""
    if dask_address or dask_workers:
        if not os.environ.get("PREFECT_API_URL"):
            log.warning(
                "PREFECT_API_URL is not set: the flow runs against a temporary Prefect server; "
                "start one (prefect server start) and export PREFECT_API_URL for Dask runs"
            )
        return ingest_flow_on_dask(dask_address, dask_workers or 2)(**parameters)
    return ingest_flow(**parameters)


ingest_flow_dask = ingest_flow_on_dask(
    os.environ.get(DASK_ADDRESS_ENV) or None, int(os.environ.get(DASK_WORKERS_ENV) or 2)
)
