"""The per-document analysis cache of the flows: content hash + extractor settings -> a persisted analysis.

Each document's analysis is persisted (Prefect ``ResultStore`` on a local folder) under a key made of
its content hash and ``IngestSettings.analysis_settings()`` (settings, analysis format, typed set digest); the document id is not part of it
(a renamed file is a hit). A file that cannot be read (e.g. cut short by a crash) counts as a miss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pipeline.ingest.settings import ANALYSIS_FORMAT, IngestSettings
from pipeline.types import Document, DocumentAnalysis

#: The analyses' format (``pipeline.ingest.settings.ANALYSIS_FORMAT``): a new one misses every entry.
CACHE_FORMAT = ANALYSIS_FORMAT
#: Environment variable naming the cache folder (default: $PREFECT_HOME/qkgraph-cache).
CACHE_DIR_ENV = "QKGRAPH_CACHE_DIR"


def analysis_cache_key(content_hash: str, settings: IngestSettings) -> str:
    """The cache key of one document's analysis: content hash + ``settings.analysis_settings()`` (the
    extractor settings, the analysis format and, in typed mode, the typed relation set's digest)."""
    payload = json.dumps({"content_hash": content_hash, "settings": settings.analysis_settings()}, sort_keys=True)
    return "analysis-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def labels_cache_key(settings: IngestSettings) -> str:
    """The cache key of the relation labels that go with an extraction's settings."""
    payload = json.dumps({"format": CACHE_FORMAT, "settings": settings.as_dict()}, sort_keys=True)
    return "labels-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()) / "qkgraph-cache"


class AnalysisCache:
    """Persisted analyses in a folder, through Prefect's ResultStore (one file per key)."""

    def __init__(self, folder: str | Path) -> None:
        from prefect.filesystems import LocalFileSystem
        from prefect.results import ResultStore
        from prefect.serializers import PickleSerializer

        self.folder = Path(folder).expanduser().resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._store = ResultStore(
            result_storage=LocalFileSystem(basepath=str(self.folder)),
            serializer=PickleSerializer(),
            cache_result_in_memory=False,
        )

    def _read(self, key: str) -> Any:
        if not (self.folder / key).is_file():
            return None
        try:
            return self._store.read(key).result
        except Exception:  # noqa: BLE001 - an unreadable entry (cut short, foreign) is a miss and gets rewritten
            return None

    def _write(self, key: str, value: Any) -> None:
        self._store.write(value, key=key)

    def get(self, document: Document, settings: IngestSettings) -> DocumentAnalysis | None:
        cached = self._read(analysis_cache_key(document.content_hash, settings))
        if not isinstance(cached, DocumentAnalysis) or cached.document.text != document.text:
            return None
        # Same text and settings give the same analysis; the id and source are this document's.
        return dataclasses.replace(cached, document=document)

    def put(self, analysis: DocumentAnalysis, settings: IngestSettings) -> None:
        self._write(analysis_cache_key(analysis.document.content_hash, settings), analysis)

    def get_labels(self, settings: IngestSettings) -> dict[str, str] | None:
        labels = self._read(labels_cache_key(settings))
        return dict(labels) if isinstance(labels, dict) else None

    def put_labels(self, settings: IngestSettings, labels: dict[str, str]) -> None:
        self._write(labels_cache_key(settings), dict(labels))
