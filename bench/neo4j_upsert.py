"""Neo4j upsert throughput: batched (many documents per transaction) vs per-row, side by side.

Everything goes through the real store code (pipeline.store.upsert_analyses). Batched: the defaults
(up to DEFAULT_MAX_DOCUMENTS documents / DEFAULT_MAX_ROWS rows per transaction, UNWIND chunks of
DEFAULT_BATCH_SIZE). Per-row: batch_size=1 and max_documents=1, so every statement runs once per row
and every document is its own transaction (the path before batching). Cases, interleaved in every
round (A B A B), best of --rounds: synthetic first load, per-row on a ~1k-relation subset, EWT first
load, a night (the EWT store with 10% of its documents changed), the subset batched.

Data, built without the transformer so the figures are about the store only:

(a) UD English EWT dev (318 documents): spans = NOUN/PROPN tokens keyed by lemma; relations = the
    gold dependency arcs between two such tokens (dependent -> head), score 1.0, with SYNTHETIC
    relation type ids per deprel (``DEPREL_TYPES`` below; they name no real attention head).
(b) A synthetic corpus (seeded): documents of log-normally distributed size (up to 15k
    relations each), span keys drawn Zipf-like from a shared vocabulary of realistic entity/noun keys,
    at least 100k relations in all (each becomes an EVIDENCE and, nearly always, a RELATES edge).

Before the timed rounds, --warm-loads (default 3) untimed rounds of the synthetic load, the EWT load
and the night let the server's JIT compile the write path (a fresh JVM's C2 compiler is busy for
about three synthetic loads), as a long-lived server has; their synthetic times are printed too, the
first of them being a cold server's first load.

Reports relationships per second (MENTIONED_IN + PART_OF + EVIDENCE + RELATES counted in the
database afterwards; for the night, the relationships of the changed documents over the whole night's
time, unchanged documents included) and the load average. Ends with one JSON line: rels_per_s
(synthetic), rels_per_s_small_docs (EWT), rels_per_s_night, ratio = synthetic batched / per-row.

    .venv/bin/python bench/neo4j_upsert.py            # starts its own throwaway Neo4j
    NEO4J_URI=bolt://... NEO4J_PASSWORD=... .venv/bin/python bench/neo4j_upsert.py --clear-ok
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import sys
import time
from contextlib import ExitStack
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipeline import store  # noqa: E402
from pipeline.store.dev_server import BULK_WRITE_HEAP_MB, BULK_WRITE_JVM_ARGS, BULK_WRITE_PAGECACHE_MB  # noqa: E402
from pipeline.store.settings import Neo4jSettings  # noqa: E402
from pipeline.text.conllu import read_conllu_documents  # noqa: E402
from pipeline.types import Document, DocumentAnalysis, Span, SpanRelation  # noqa: E402

EWT_DEV = REPO_ROOT.parent / "shared/data/ud_english_ewt/en_ewt-ud-dev.conllu"

#: The throwaway server's configuration (see docs/neo4j.md, "Server settings for bulk writes").
BENCH_SERVER: dict = {
    "heap_mb": BULK_WRITE_HEAP_MB,
    "pagecache_mb": BULK_WRITE_PAGECACHE_MB,
    "settings": {},
    "jvm_args": list(BULK_WRITE_JVM_ARGS),
}

#: SYNTHETIC relation types for the EWT bench: one made-up id per dependency relation (base deprel).
DEPREL_TYPES = {
    "compound": "L0H0k8",
    "nmod": "L0H1k8",
    "conj": "L0H2k8",
    "flat": "L0H3k8",
    "appos": "L0H4k8",
    "nsubj": "L0H5k8",
    "list": "L0H6k8",
}
OTHER_TYPE = "L0H7k8"  # every other deprel
EWT_LABELS = {**{v: f"{k} (synthetic)" for k, v in DEPREL_TYPES.items()}, OTHER_TYPE: "other deprel (synthetic)"}


# ── data ─────────────────────────────────────────────────────────────────────────────────────────


def ewt_analyses(path: Path) -> list[DocumentAnalysis]:
    out = []
    for cdoc in read_conllu_documents(path):
        offsets = cdoc.sentence_offsets()
        spans: list[Span] = []
        relations: list[SpanRelation] = []
        n_tokens = 0
        for si, sentence in enumerate(cdoc.sentences):
            base = offsets[si][0]
            index_of: dict[int, int] = {}
            for tok in sentence.tokens:
                n_tokens += 1
                if tok.upos in ("NOUN", "PROPN"):
                    index_of[tok.id] = len(spans)
                    lemma = tok.lemma if tok.lemma != "_" else tok.form
                    spans.append(
                        Span(
                            f"word:{lemma.lower()}",
                            tok.form,
                            "",
                            "word",
                            si,
                            base + tok.start_char,
                            base + tok.end_char,
                        )
                    )
            for tok in sentence.tokens:
                if tok.id in index_of and tok.head in index_of:
                    rel = DEPREL_TYPES.get(tok.deprel.split(":")[0], OTHER_TYPE)
                    relations.append(SpanRelation(index_of[tok.id], index_of[tok.head], rel, 1.0, si))
        out.append(
            DocumentAnalysis(
                Document(cdoc.id, cdoc.text, source=f"{path.name}#{cdoc.id}"),
                offsets,
                spans,
                relations,
                n_tokens=n_tokens,
                settings={"bench": "ewt-gold-arcs"},
            )
        )
    return out


_FIRST = ["Marie", "Pierre", "Ada", "Alan", "Grace", "Niels", "Lise", "Enrico", "Rosalind", "Max", "Emmy", "Paul"]
_LAST = ["Curie", "Lovelace", "Turing", "Hopper", "Bohr", "Meitner", "Fermi", "Franklin", "Planck", "Noether", "Dirac"]
_ORG = ["Institute", "University", "Laboratory", "Society", "Academy", "Foundation", "Company", "Observatory"]
_PLACE = ["Paris", "Warsaw", "Cambridge", "Copenhagen", "Berlin", "Vienna", "Zurich", "Rome", "Oslo", "Leiden"]
_NOUNS = [
    "radioactivity",
    "element",
    "experiment",
    "measurement",
    "theory",
    "laboratory",
    "prize",
    "lecture",
    "isotope",
    "radiation",
    "discovery",
    "publication",
    "colleague",
    "student",
    "apparatus",
    "sample",
]


def _vocabulary(rng: random.Random, size: int) -> list[tuple[str, str, str, str]]:
    """(key, text, label, kind) with realistic lengths: names, organisations, places, noun chunks."""
    vocab = []
    for i in range(size):
        r = rng.random()
        if r < 0.25:
            text = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" + (f" {i}" if i > 200 else "")
            vocab.append((f"entity:PERSON:{text.lower()}", text, "PERSON", "entity"))
        elif r < 0.4:
            text = f"{rng.choice(_LAST)} {rng.choice(_ORG)} of {rng.choice(_PLACE)}" + (f" {i}" if i > 200 else "")
            vocab.append((f"entity:ORG:{text.lower()}", text, "ORG", "entity"))
        elif r < 0.5:
            text = rng.choice(_PLACE) + (f" {i}" if i > 100 else "")
            vocab.append((f"entity:GPE:{text.lower()}", text, "GPE", "entity"))
        else:
            text = f"the {rng.choice(_NOUNS)} of {rng.choice(_NOUNS)}s" + (f" {i}" if i > 300 else "")
            vocab.append((f"noun_chunk:{text.lower()}", text, "", "noun_chunk"))
    return vocab


def synthetic_analyses(
    seed: int, target_relations: int, n_docs: int, vocab_size: int = 30_000, prefix: str = "syn"
) -> list[DocumentAnalysis]:
    """Seeded documents whose relation counts add up to at least ``target_relations``."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, vocab_size)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(vocab_size)]  # Zipf-like reuse across documents
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    types = [f"L{layer}H{head}k{k}" for layer in range(12) for head in range(4) for k in (8,)]
    sizes = [rng.lognormvariate(0, 0.9) for _ in range(n_docs)]
    scale = target_relations / sum(sizes)
    counts = [max(20, min(15_000, math.ceil(s * scale))) for s in sizes]
    while sum(counts) < target_relations:
        counts[rng.randrange(n_docs)] += target_relations - sum(counts)
    docs = []
    for d, n_rel in enumerate(counts):
        sentences: list[str] = []
        bounds: list[tuple[int, int]] = []
        spans: list[Span] = []
        relations: list[SpanRelation] = []
        pos = 0
        per_sentence = 6  # relations per sentence, among 8 mentions
        for si in range(math.ceil(n_rel / per_sentence)):
            picks = [vocab[i] for i in (rng.choices(range(vocab_size), cum_weights=cum, k=8))]
            words, first = [], len(spans)
            at = pos
            for key, text, label, kind in picks:
                spans.append(Span(key, text, label, kind, si, at, at + len(text)))  # type: ignore[arg-type]
                words.append(text)
                at += len(text) + 2
            sentence = ", ".join(words) + "."
            sentences.append(sentence)
            bounds.append((pos, pos + len(sentence)))
            pos += len(sentence) + 1
            for _ in range(min(per_sentence, n_rel - len(relations))):
                a, b = rng.sample(range(first, first + 8), 2)
                relations.append(SpanRelation(a, b, rng.choice(types), round(rng.random(), 6), si))
        docs.append(
            DocumentAnalysis(
                Document(f"{prefix}-{d:04d}", " ".join(sentences)),
                bounds,
                spans,
                relations,
                settings={"bench": "synthetic", "seed": seed},
            )
        )
    return docs


# ── measuring ────────────────────────────────────────────────────────────────────────────────────


def db_counts(driver, database: str) -> tuple[int, int]:
    records, _, _ = driver.execute_query(
        "CALL () { MATCH (n) RETURN count(n) AS nodes } CALL () { MATCH ()-[r]->() RETURN count(r) AS rels } "
        "RETURN nodes, rels",
        database_=database,
    )
    return records[0]["nodes"], records[0]["rels"]


def doc_rels(driver, database: str, ids: list[str]) -> int:
    """MENTIONED_IN + PART_OF + EVIDENCE relationships of these documents (what a night rewrites)."""
    records, _, _ = driver.execute_query(
        "UNWIND $ids AS id CALL (id) { MATCH (d:Document {id: id})<-[r]-() RETURN count(r) AS n1 } "
        "CALL (id) { MATCH ()-[e:EVIDENCE {doc_id: id}]->() RETURN count(e) AS n2 } RETURN sum(n1 + n2) AS n",
        ids=ids,
        database_=database,
    )
    return int(records[0]["n"])


def changed(analysis: DocumentAnalysis) -> DocumentAnalysis:
    """A new version of a document: other text (so another hash) and every other relation dropped."""
    doc = analysis.document
    return DocumentAnalysis(
        Document(doc.id, doc.text + " Revised.", source=doc.source),
        analysis.sentences,
        analysis.spans,
        analysis.relations[::2],
        n_tokens=analysis.n_tokens,
        settings=analysis.settings,
    )


def timed_load(driver, database: str, analyses, labels=None, per_row: bool = False) -> dict:
    """Clear, then write ``analyses``: batched (the defaults) or per-row (batch size 1, one document
    per transaction: every statement once per row, the path before batching)."""
    store.clear_database(driver, database)
    limits = {"batch_size": 1, "max_documents": 1} if per_row else {}
    t0 = time.perf_counter()
    result = store.upsert_analyses(driver, database, analyses, relation_labels=labels, **limits)
    seconds = time.perf_counter() - t0
    nodes, rels = db_counts(driver, database)
    return {"seconds": seconds, "nodes": nodes, "rels": rels, "rels_per_s": rels / seconds, "result": result}


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relations", type=int, default=100_000, help="synthetic relations (>= 100k for the report)")
    parser.add_argument("--docs", type=int, default=30, help="synthetic documents")
    parser.add_argument("--per-row-rows", type=int, default=1_000, help="relation rows for the per-row path")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (best time per case is kept)")
    parser.add_argument("--changed", type=float, default=0.10, help="share of EWT documents changed in the night")
    parser.add_argument("--clear-ok", action="store_true", help="allow clearing the database named by NEO4J_URI")
    parser.add_argument(
        "--warm-loads",
        type=int,
        default=3,
        help="untimed rounds first (synthetic load, EWT load, night), so the server's JIT has compiled the "
        "write path, as on a long-lived server; 0 to time a cold server",
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        settings = Neo4jSettings.from_env()
        if settings is None:
            from pipeline.store.dev_server import Neo4jDevServer

            password = secrets.token_urlsafe(16)
            server = stack.enter_context(Neo4jDevServer(password=password, **BENCH_SERVER))
            settings = Neo4jSettings(uri=server.uri, user="neo4j", password=password)
            where = (
                f"throwaway Neo4j dev server (started in {server.startup_seconds:.0f} s, heap {server.heap_mb} MiB, "
                f"page cache {server.pagecache_mb} MiB, JVM {' '.join(server.jvm_args)}, settings {server.settings})"
            )
        else:
            where = f"{settings.uri} database {settings.database!r}"
        driver = store.connect(settings, timeout_s=30.0)  # before any work: a bad setting costs nothing
        stack.callback(driver.close)
        database = settings.database
        if Neo4jSettings.from_env() is not None and db_counts(driver, database)[0] and not args.clear_ok:
            sys.exit(f"{where} is not empty and this bench clears it: pass --clear-ok if that is fine")
        info = store.server_info(driver, database)
        store.ensure_schema(driver, database)
        try:
            import neo4j._rust  # noqa: F401

            rust = True
        except ImportError:
            rust = False
        print(f"Neo4j {info['version']} {info['edition']} - {where}; driver Rust extension: {rust}")

        ewt = ewt_analyses(EWT_DEV)
        corpus = synthetic_analyses(seed=1234, target_relations=args.relations, n_docs=args.docs)
        subset = synthetic_analyses(seed=99, target_relations=args.per_row_rows, n_docs=2, prefix="row")
        rng = random.Random(5)
        night_ids = sorted(rng.sample([a.document.id for a in ewt], round(len(ewt) * args.changed)))
        night = [changed(a) if a.document.id in night_ids else a for a in ewt]
        store.upsert_analyses(driver, database, subset[:1])  # warm-up: JVM and query plans
        # A fresh JVM's C2 compiler is busy for the first ~3 synthetic loads (about half a core, taken
        # from the server's one busy transaction and the client; JFR: bench/neo4j_profile.py --jfr).
        # A long-lived server has compiled its write path, so the rounds are timed after that.
        warm_s: list[float] = []
        for _ in range(args.warm_loads):
            warm_s.append(timed_load(driver, database, corpus)["seconds"])
            timed_load(driver, database, ewt, EWT_LABELS)
            store.upsert_analyses(driver, database, night, relation_labels=EWT_LABELS)
        if warm_s:
            print(
                f"  JIT warm-up ({args.warm_loads} untimed rounds): synthetic loads "
                + ", ".join(f"{t:.2f} s" for t in warm_s)
                + f"  load {os.getloadavg()[0]:.2f}"
            )
        runs: dict[str, list[dict]] = {k: [] for k in ("synthetic", "ewt", "night", "subset", "per_row")}
        for rnd in range(args.rounds):  # A B A B: every case once per round, so drifting load hits each alike
            runs["synthetic"].append(timed_load(driver, database, corpus))
            runs["per_row"].append(timed_load(driver, database, subset, per_row=True))
            runs["ewt"].append(timed_load(driver, database, ewt, EWT_LABELS))
            t0 = time.perf_counter()  # the night: the EWT store, 10% of its documents changed
            result = store.upsert_analyses(driver, database, night, relation_labels=EWT_LABELS)
            seconds = time.perf_counter() - t0
            rels = doc_rels(driver, database, night_ids)
            runs["night"].append({"seconds": seconds, "rels": rels, "rels_per_s": rels / seconds, "result": result})
            runs["subset"].append(timed_load(driver, database, subset))
            print(
                f"  round {rnd + 1}: "
                + ", ".join(f"{k} {v[-1]['rels_per_s']:.0f} rels/s ({v[-1]['seconds']:.2f} s)" for k, v in runs.items())
                + f"  load {os.getloadavg()[0]:.2f}"
            )
        syn, ewt_r, night_r, sub, row = (best(runs[k]) for k in ("synthetic", "ewt", "night", "subset", "per_row"))
        store.clear_database(driver, database)

    n_rel = sum(len(a.relations) for a in corpus)
    load = os.getloadavg()
    print(f"\nbest of {args.rounds} rounds, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 shared cores)")
    print(
        f"(b) synthetic first load: {len(corpus)} documents, {n_rel} relations -> {syn['rels']} relationships "
        f"in {syn['seconds']:.2f} s = {syn['rels_per_s']:.0f} rels/s"
    )
    print(
        f"(a) EWT dev first load: {len(ewt)} small documents, {sum(len(a.relations) for a in ewt)} gold arcs -> "
        f"{ewt_r['rels']} relationships in {ewt_r['seconds']:.2f} s = {ewt_r['rels_per_s']:.0f} rels/s, "
        f"{len(ewt) / ewt_r['seconds']:.0f} docs/s"
    )
    print(
        f"    night: {len(night_ids)} of {len(ewt)} documents changed ({night_r['result']}): {night_r['seconds']:.2f} s, "
        f"{night_r['rels']} relationships of the changed documents = {night_r['rels_per_s']:.0f} rels/s"
    )
    print(
        f"    per-row (batch size 1, one document per transaction) on {sum(len(a.relations) for a in subset)} "
        f"relations: {row['seconds']:.2f} s, {row['rels_per_s']:.0f} rels/s; same subset batched "
        f"{sub['rels_per_s']:.0f} rels/s (like for like {sub['rels_per_s'] / row['rels_per_s']:.1f}x)"
    )
    ratio = syn["rels_per_s"] / row["rels_per_s"]
    print(f"    ratio synthetic batched / per-row: {ratio:.1f}x")
    print(
        json.dumps(
            {
                "bench": "neo4j_upsert",
                "rels_per_s": round(syn["rels_per_s"], 1),
                "rels_per_s_small_docs": round(ewt_r["rels_per_s"], 1),
                "rels_per_s_night": round(night_r["rels_per_s"], 1),
                "per_row_rels_per_s": round(row["rels_per_s"], 1),
                "ratio": round(ratio, 2),
                "like_for_like_ratio": round(sub["rels_per_s"] / row["rels_per_s"], 2),
                "rounds": args.rounds,
                "warm_loads": args.warm_loads,
                "warm_synthetic_s": [round(t, 2) for t in warm_s],
                "load_average": [round(x, 2) for x in load],
                "rust_extension": rust,
                "max_documents": store.DEFAULT_MAX_DOCUMENTS,
                "max_rows": store.DEFAULT_MAX_ROWS,
                "batch_size": store.DEFAULT_BATCH_SIZE,
                "synthetic": {
                    "documents": len(corpus),
                    "relations": n_rel,
                    "relationships": syn["rels"],
                    "seconds": round(syn["seconds"], 2),
                },
                "ewt": {"documents": len(ewt), "relationships": ewt_r["rels"], "seconds": round(ewt_r["seconds"], 2)},
                "night": {
                    "changed": len(night_ids),
                    "relationships": night_r["rels"],
                    "seconds": round(night_r["seconds"], 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
