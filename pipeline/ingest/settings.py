"""What identifies an extraction: the one home of the ingest defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.model.defaults import DEFAULT_MODEL
from pipeline.relations.extract import BATCH_TOKENS
from pipeline.text.defaults import DEFAULT_SPACY, DEFAULT_WORD_POS

DEFAULT_TOP_K = 3
DEFAULT_THRESHOLD = 0.7
DEFAULT_FACT_THRESHOLD = 0.5
"""Facts shown from this probability on (the product of their arcs' calibrated probabilities; the
held-out precision it keeps is in docs/evaluation.md, "Facts")."""
DEFAULT_OUT = "out/graph.graphml"
DEFAULT_BATCH_CHARS = 8_000
"""The flows' analyse-batch tasks close once their new documents hold this many characters."""
RELATION_TYPES = ("typed", "subspaces")
"""``typed``: the model's calibrated dependency relations (the default); ``subspaces``: the untyped
spread-ranked relational subspaces (``top_k`` per layer), for exploration."""


#: What an analysis means beyond its settings: bump when DocumentAnalysis or the extraction code
#: changes what the same settings produce. A stored document analysed under another format (or another
#: typed relation set, or other settings) is analysed again and replaced, not kept as "unchanged".
#: 2: typed relations (SpanRelation.unit), pronoun spans. 3: facts (DocumentAnalysis.facts, Word lemmas).
#: 4: facts with subjects shared down xcomp / conj, calibration groups, no oblique inside its object span.
ANALYSIS_FORMAT = 4


@dataclass(frozen=True)
class IngestSettings:
    """Extractor and span settings; they identify an extraction (part of the cache key of the flows).

    Every caller (the CLI, the Prefect flow, ``qkgraph serve``, the benchmarks) takes its defaults
    from here.
    """

    model: str = DEFAULT_MODEL
    relation_types: str = "typed"  # one of RELATION_TYPES
    layers: tuple[int, ...] | None = None  # None: all layers (typed: the relations whose unit is there)
    top_k: int = DEFAULT_TOP_K  # relational subspaces per layer (subspaces mode only)
    threshold: float = DEFAULT_THRESHOLD
    fact_threshold: float = DEFAULT_FACT_THRESHOLD  # typed mode: facts composed from the typed arcs
    max_tokens: int = 512
    overlap: int = 1
    batch_tokens: int = BATCH_TOKENS  # padded tokens per forward pass (windows grouped by length)
    spacy_model: str = DEFAULT_SPACY
    word_pos: tuple[str, ...] = DEFAULT_WORD_POS

    def __post_init__(self) -> None:
        if self.relation_types not in RELATION_TYPES:
            raise ValueError(f"relation_types must be one of {', '.join(RELATION_TYPES)}, got {self.relation_types!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.fact_threshold <= 1.0:
            raise ValueError(f"fact_threshold must be in [0, 1], got {self.fact_threshold}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be at least 8, got {self.max_tokens}")
        if self.batch_tokens < 1:
            raise ValueError(f"batch_tokens must be at least 1, got {self.batch_tokens}")
        if self.layers is not None and (not self.layers or any(layer < 0 for layer in self.layers)):
            raise ValueError(f"layers must be non-negative layer numbers, got {list(self.layers)}")

    def as_dict(self) -> dict[str, str | int | float]:
        """JSON-able form: written into every analysis (provenance) and hashed into cache keys."""
        d = asdict(self)
        d["layers"] = "all" if self.layers is None else ",".join(map(str, self.layers))
        d["word_pos"] = ",".join(self.word_pos)
        return d

    def analysis_settings(self) -> dict[str, str | int | float]:
        """What every analysis records about how it was made (its provenance, a stored document's
        ``settings``): ``as_dict()``, ``analysis_format`` (ANALYSIS_FORMAT) and, in typed mode,
        ``typed_set`` (16 hex digits of the label artifact's sha256). A sink holds a document as
        unchanged only when its text and these are the same."""
        d = self.as_dict()
        d["analysis_format"] = ANALYSIS_FORMAT
        if self.relation_types == "typed":
            from pipeline.relations.labels import typed_set_digest

            d["typed_set"] = typed_set_digest(self.model)[:16]
        return d


def parse_layers(text: str | None, n_layers: int | None = None) -> tuple[int, ...] | None:
    """'all' / None -> None; '0,2,4' or '1-3' -> a sorted tuple of ints.

    Raises:
        ValueError: a part that is not a number, a reversed range such as '3-1', or (with
            ``n_layers``) a layer outside [0, n_layers - 1]; the message names the part.
    """
    if text is None or text.strip().lower() in ("", "all"):
        return None
    out: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError(f"the range {part!r} is reversed (write {b}-{a})")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError as exc:
            if "reversed" in str(exc):
                raise
            raise ValueError(f"{part!r} is not a layer number or a range like 1-3") from None
    if n_layers is not None and any(not 0 <= layer < n_layers for layer in out):
        raise ValueError(f"layers must be in [0, {n_layers - 1}], got {text!r}")
    return tuple(sorted(set(out)))
