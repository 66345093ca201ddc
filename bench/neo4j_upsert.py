"""Neo4j upsert throughput: batched UNWIND vs one statement per row, and a batch-size sweep.

Everything goes through the real store code (pipeline.store.upsert_analyses: one managed transaction
per document, every statement run over its rows in UNWIND batches of ``batch_size``). The per-row
path is the same code with ``batch_size=1``: every MERGE/CREATE/read runs once per row.

Data, built without the transformer so the figures are about the store only:

(a) UD English EWT dev (318 documents): spans = NOUN/PROPN tokens keyed by lemma; relations = the
    gold dependency arcs between two such tokens (dependent -> head), score 1.0, with SYNTHETIC
    relation type ids per deprel (``DEPREL_TYPES`` below; they name no real attention head).
(b) A synthetic corpus (seeded): documents of log-normally distributed size (up to 15k
    relations each), span keys drawn Zipf-like from a shared vocabulary of realistic entity/noun keys,
    at least 100k relations in all (each becomes an EVIDENCE and, nearly always, a RELATES edge).

Reports relationships written per second (MENTIONED_IN + PART_OF + EVIDENCE + RELATES, counted in
the database afterwards): for the whole synthetic corpus at the default batch size, and for a sweep
of batch sizes on a smaller corpus of the same distribution (6k relations, best of 2 rounds; the
whole corpus per size would take too long on 2 cores). The per-row path runs on a subset of about
2,000 relation rows and its time for the whole corpus is EXTRAPOLATED from its rate. The EWT ingest
is the first work of a fresh server, so it includes JVM warm-up and query planning.

Ends with one JSON line: ratio = batched rels/s (default batch size) / per-row rels/s,
rels_per_s = batched rels/s (whole synthetic corpus).

    .venv/bin/python bench/neo4j_upsert.py            # starts its own throwaway Neo4j
    NEO4J_URI=bolt://... NEO4J_PASSWORD=... .venv/bin/python bench/neo4j_upsert.py --clear-ok
"""

from __future__ import annotations

import argparse
import json
import math
import random
import secrets
import sys
import time
from contextlib import ExitStack
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipeline import store  # noqa: E402
from pipeline.store.settings import Neo4jSettings  # noqa: E402
from pipeline.text.conllu import read_conllu_documents  # noqa: E402
from pipeline.types import Document, DocumentAnalysis, Span, SpanRelation  # noqa: E402

EWT_DEV = REPO_ROOT.parent / "shared/data/ud_english_ewt/en_ewt-ud-dev.conllu"

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


def timed_ingest(driver, database: str, analyses, batch_size: int, labels=None) -> dict:
    store.clear_database(driver, database)
    t0 = time.perf_counter()
    result = store.upsert_analyses(driver, database, analyses, relation_labels=labels, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    nodes, rels = db_counts(driver, database)
    return {"seconds": seconds, "nodes": nodes, "rels": rels, "rels_per_s": rels / seconds, "result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relations", type=int, default=100_000, help="synthetic relations (>= 100k for the report)")
    parser.add_argument("--docs", type=int, default=30, help="synthetic documents")
    parser.add_argument("--sweep-relations", type=int, default=6_000, help="synthetic relations for the sweep")
    parser.add_argument("--repeats", type=int, default=2, help="sweep rounds (best time per batch size is kept)")
    parser.add_argument("--per-row-rows", type=int, default=2_000, help="relation rows for the per-row path")
    parser.add_argument("--sweep", default="100,500,1000,5000,10000", help="batch sizes to compare")
    parser.add_argument("--clear-ok", action="store_true", help="allow clearing the database named by NEO4J_URI")
    args = parser.parse_args()
    sweep = [int(x) for x in args.sweep.split(",")]
    default_bs = store.DEFAULT_BATCH_SIZE

    with ExitStack() as stack:
        settings = Neo4jSettings.from_env()
        if settings is None:
            from pipeline.store.dev_server import Neo4jDevServer

            password = secrets.token_urlsafe(16)
            server = stack.enter_context(Neo4jDevServer(heap_mb=1024, pagecache_mb=512, password=password))
            settings = Neo4jSettings(uri=server.uri, user="neo4j", password=password)
            where = f"throwaway Neo4j dev server (started in {server.startup_seconds:.0f} s, heap 1 GiB, page cache 512 MiB)"
        else:
            where = f"{settings.uri} database {settings.database!r}"
        driver = store.connect(settings, timeout_s=30.0)  # before any work: a bad setting costs nothing
        stack.callback(driver.close)
        database = settings.database
        if Neo4jSettings.from_env() is not None and db_counts(driver, database)[0] and not args.clear_ok:
            sys.exit(f"{where} is not empty and this bench clears it: pass --clear-ok if that is fine")
        info = store.server_info(driver, database)
        store.ensure_schema(driver, database)
        print(f"Neo4j {info['version']} {info['edition']} - {where}")

        # (a) EWT dev
        ewt = ewt_analyses(EWT_DEV)
        n_ewt_rel = sum(len(a.relations) for a in ewt)
        first = timed_ingest(driver, database, ewt, default_bs, EWT_LABELS)
        t0 = time.perf_counter()
        again = store.upsert_analyses(driver, database, ewt, relation_labels=EWT_LABELS, batch_size=default_bs)
        t_again = time.perf_counter() - t0
        print(
            f"\n(a) UD EWT dev: {len(ewt)} documents, {sum(len(a.spans) for a in ewt)} NOUN/PROPN spans, "
            f"{n_ewt_rel} gold arcs (synthetic relation types), batch size {default_bs}"
        )
        print(
            f"    ingest : {first['seconds']:7.2f} s  {len(ewt) / first['seconds']:7.1f} docs/s  "
            f"{first['rels_per_s']:8.0f} rels/s  -> {first['nodes']} nodes, {first['rels']} relationships"
        )
        print(f"    rerun  : {t_again:7.2f} s  {len(ewt) / t_again:7.1f} docs/s  (all unchanged: {again})")

        # (b) synthetic corpus: the whole of it at the default batch size
        corpus = synthetic_analyses(seed=1234, target_relations=args.relations, n_docs=args.docs)
        n_rel = sum(len(a.relations) for a in corpus)
        sizes = sorted(len(a.relations) for a in corpus)
        print(
            f"\n(b) synthetic: {len(corpus)} documents, {n_rel} relations "
            f"(per document min {sizes[0]}, median {sizes[len(sizes) // 2]}, max {sizes[-1]}), "
            f"{sum(len(a.spans) for a in corpus)} mentions"
        )
        batched = timed_ingest(driver, database, corpus, default_bs)
        print(
            f"    batched, batch size {default_bs}: {batched['seconds']:.1f} s, {batched['rels_per_s']:.0f} rels/s "
            f"-> {batched['nodes']} nodes, {batched['rels']} relationships"
        )

        # batch-size sweep on a smaller corpus of the same distribution (the full one per size takes too long)
        small = synthetic_analyses(
            seed=4321,
            target_relations=args.sweep_relations,
            n_docs=max(2, round(args.docs * args.sweep_relations / args.relations)),
            prefix="sw",
        )
        small_sizes = sorted(len(a.relations) for a in small)
        print(
            f"\n    batch-size sweep on {len(small)} documents, {sum(small_sizes)} relations "
            f"(per document min {small_sizes[0]}, max {small_sizes[-1]}):"
        )
        print(f"    best of {args.repeats} rounds:")
        print(f"    {'batch size':>10} {'seconds':>9} {'rels/s':>9} {'relationships':>14} {'nodes':>8}")
        runs = {}
        sizes_to_try = sorted(set(sweep) | {default_bs})
        for _rep in range(args.repeats):  # rounds over all sizes, so drifting machine load hits each alike
            for bs in sizes_to_try:
                r = timed_ingest(driver, database, small, bs)
                if bs not in runs or r["seconds"] < runs[bs]["seconds"]:
                    runs[bs] = r
        for bs in sizes_to_try:
            r = runs[bs]
            mark = "  <- default" if bs == default_bs else ""
            print(f"    {bs:>10} {r['seconds']:>9.2f} {r['rels_per_s']:>9.0f} {r['rels']:>14} {r['nodes']:>8}{mark}")

        # per-row path on a subset of the same distribution (separate seed, ~per_row_rows relations)
        subset = synthetic_analyses(seed=99, target_relations=args.per_row_rows, n_docs=2, prefix="row")
        n_sub = sum(len(a.relations) for a in subset)
        per_row = timed_ingest(driver, database, subset, 1)
        same_batched = timed_ingest(driver, database, subset, default_bs)
        extrapolated_s = batched["rels"] / per_row["rels_per_s"]
        ratio = batched["rels_per_s"] / per_row["rels_per_s"]
        print(
            f"\n    per-row (batch size 1) on {n_sub} relations in {len(subset)} documents: "
            f"{per_row['seconds']:.2f} s, {per_row['rels_per_s']:.0f} rels/s ({per_row['rels']} relationships)"
        )
        print(
            f"    same subset batched ({default_bs}): {same_batched['seconds']:.2f} s, "
            f"{same_batched['rels_per_s']:.0f} rels/s  -> like-for-like ratio "
            f"{same_batched['rels_per_s'] / per_row['rels_per_s']:.1f}x"
        )
        print(
            f"    full corpus per-row: EXTRAPOLATED {extrapolated_s:.0f} s for {batched['rels']} relationships "
            f"(measured batched: {batched['seconds']:.1f} s)"
        )
        print(f"    ratio batched/per-row: {ratio:.1f}x")
        best_bs = max(runs, key=lambda b: runs[b]["rels_per_s"])
        print(
            f"    fastest batch size in the sweep: {best_bs} ({runs[best_bs]['rels_per_s']:.0f} rels/s); "
            f"default {default_bs} ({runs[default_bs]['rels_per_s']:.0f} rels/s)"
        )
        store.clear_database(driver, database)

    print(
        json.dumps(
            {
                "bench": "neo4j_upsert",
                "ratio": round(ratio, 2),
                "rels_per_s": round(batched["rels_per_s"], 1),
                "default_batch_size": default_bs,
                "per_row_rels_per_s": round(per_row["rels_per_s"], 1),
                "per_row_extrapolated_s": round(extrapolated_s, 1),
                "like_for_like_ratio": round(same_batched["rels_per_s"] / per_row["rels_per_s"], 2),
                "synthetic": {
                    "documents": len(corpus),
                    "relations": n_rel,
                    "relationships": batched["rels"],
                    "seconds": round(batched["seconds"], 2),
                },
                "sweep_rels_per_s": {str(b): round(r["rels_per_s"], 1) for b, r in sorted(runs.items())},
                "ewt": {
                    "documents": len(ewt),
                    "relations": n_ewt_rel,
                    "seconds": round(first["seconds"], 2),
                    "rels_per_s": round(first["rels_per_s"], 1),
                    "rerun_unchanged_s": round(t_again, 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
