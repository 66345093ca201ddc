"""Options every qkgraph task shares."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

#: No Prefect caching or result persistence: Prefect would hash whole batches of documents and
#: analyses for its default cache key. The flows' cache is per document (flows/cache.py).
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
