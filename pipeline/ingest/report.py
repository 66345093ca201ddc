"""What an ingest run did: counts per sink, skips and failures with reasons, outputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.types import FailedDocument, SkippedInput, WriteResult

__all__ = ["FailedDocument", "IngestReport", "WriteResult"]


def _counts() -> dict[str, int]:
    return {"added": 0, "unchanged": 0, "replaced": 0}


@dataclass
class IngestReport:
    """What ``run_ingest`` did.

    ``documents`` counts the documents read; ``analysed`` those sent to the analyser (the rest every
    sink already held, same id and content hash); ``sinks`` maps each sink's name to its
    added/unchanged/replaced counts; ``outputs`` what the sinks wrote (kind -> path or URI);
    ``sink_errors`` the sinks that failed as a whole (their server went away), with the error.
    """

    documents: int = 0
    analysed: int = 0
    tokens: int = 0
    seconds: float = 0.0
    skipped: list[SkippedInput] = field(default_factory=list)
    failed: list[FailedDocument] = field(default_factory=list)
    sinks: dict[str, dict[str, int]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    sink_errors: dict[str, str] = field(default_factory=dict)
    replaced_chars: int = 0  # XML-illegal code points replaced at load (pipeline.text.sources)
    documents_with_replacements: int = 0

    def count(self, sink: str, result: WriteResult) -> None:
        self.sinks.setdefault(sink, _counts())[result] += 1

    def counts(self, sink: str) -> dict[str, int]:
        return dict(self.sinks.get(sink, _counts()))

    def skipped_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.skipped:
            out[s.reason] = out.get(s.reason, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "analysed": self.analysed,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "skipped": [[s.source, s.reason, s.detail] for s in self.skipped],
            "failed": [asdict(f) for f in self.failed],
            "sinks": {k: dict(v) for k, v in self.sinks.items()},
            "outputs": dict(self.outputs),
            "sink_errors": dict(self.sink_errors),
            "replaced_chars": self.replaced_chars,
            "documents_with_replacements": self.documents_with_replacements,
        }
