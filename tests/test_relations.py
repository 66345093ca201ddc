"""Alignment of spaCy spans to model subwords, sentence windows, Clark pooling, span relations."""

from __future__ import annotations

import pytest
import torch

from pipeline.relations import RelationExtractor, make_windows, membership, pool_span_scores
from pipeline.text.spans import document_spans
from pipeline.types import Document, Span


@pytest.fixture(scope="module")
def models():
    from pipeline.ingest import IngestSettings, load_models

    return load_models(IngestSettings(relation_types="subspaces", top_k=2))


def _subwords(tok, text):
    enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
    return enc.tokens(), enc["offset_mapping"][0]


def _span(text, sub, key=None, sent=0):
    start = text.index(sub)
    return Span(key or sub, sub, "", "word", sent, start, start + len(sub))


def test_contraction_subword_covers_two_spacy_tokens(models):
    tok = models.extractor.tokenizer
    text = "I don't know."
    doc = models.nlp(text)
    spacy_tokens = [t.text for t in doc]
    assert "do" in spacy_tokens and "n't" in spacy_tokens
    toks, offsets = _subwords(tok, text)
    do = next(t for t in doc if t.text == "do")
    nt = next(t for t in doc if t.text == "n't")
    spans = [Span("do", "do", "", "word", 0, do.idx, do.idx + 2), Span("nt", "n't", "", "word", 0, nt.idx, nt.idx + 3)]
    m = membership(spans, offsets, 0)
    don = toks.index("don")
    # many-to-many: the subword "don" belongs to both spaCy tokens "do" and "n't"
    assert bool(m[0, don]) and bool(m[1, don])
    assert [toks[i] for i in m[1].nonzero().flatten().tolist()] == ["don", "'", "t"]


def test_accents_and_unicode_align_through_original_offsets(models):
    tok = models.extractor.tokenizer
    text = "Zoë drank café au lait in Zürich — naïvely."
    toks, offsets = _subwords(tok, text)
    spans = [_span(text, "café"), _span(text, "Zürich"), _span(text, "naïvely")]
    m = membership(spans, offsets, 0)
    got = ["".join(toks[i].replace("##", "") for i in row.nonzero().flatten().tolist()) for row in m]
    # the uncased tokenizer strips accents, but offsets point into the original text
    assert got == ["cafe", "zurich", "naively"]


def test_whitespace_tokens_have_no_subwords_and_are_not_spans(models):
    text = "Paris is large.\n\n\nLondon is larger."
    doc = models.nlp(text)
    assert any(t.is_space for t in doc)
    _sentences, spans = document_spans(doc)
    assert all(s.text.strip() == s.text and s.text for s in spans)
    _toks, offsets = _subwords(models.extractor.tokenizer, text)
    ws = next(t for t in doc if t.is_space)
    m = membership([Span("ws", ws.text, "", "word", 0, ws.idx, ws.idx + len(ws.text))], offsets, 0)
    assert not bool(m.any())


def test_special_tokens_and_padding_belong_to_no_span(models):
    tok = models.extractor.tokenizer
    text = "Marie Curie"
    enc = tok([text, text + " was born in Warsaw"], return_offsets_mapping=True, return_tensors="pt", padding=True)
    m = membership([Span("m", text, "", "entity", 0, 0, len(text))], enc["offset_mapping"][0], 0)
    row_tokens = enc.tokens(0)
    members = [row_tokens[i] for i in m[0].nonzero().flatten().tolist()]
    assert "[CLS]" not in members and "[SEP]" not in members and "[PAD]" not in members
    assert members == ["marie", "cu", "##rie"]


def test_pooling_sums_to_span_and_averages_from_span():
    scores = torch.tensor(
        [[[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.1, 0.3], [0.0, 0.6, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25]]]
    )
    member = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)  # span A = subwords 1,2; B = 3
    pooled = pool_span_scores(scores, member)
    # A -> B: mean over i in {1,2} of p(i,3) = (0.3 + 0.2)/2; B -> A: p(3,1) + p(3,2) = 0.5
    torch.testing.assert_close(pooled[0, 0, 1], torch.tensor(0.25))
    torch.testing.assert_close(pooled[0, 1, 0], torch.tensor(0.5))
    # A -> A: mean over i in A of (p(i,1)+p(i,2)) = ((0.1+0.1) + (0.6+0.2))/2
    torch.testing.assert_close(pooled[0, 0, 0], torch.tensor(0.5))


LONG = " ".join(
    f"Sentence number {i} says that the {w} met the {v} near the old harbour of Bergen."
    for i, (w, v) in enumerate(
        [
            ("merchant", "captain"),
            ("baker", "miller"),
            ("doctor", "nurse"),
            ("teacher", "student"),
            ("farmer", "trader"),
            ("judge", "lawyer"),
            ("painter", "sculptor"),
            ("king", "queen"),
        ]
    )
)


def test_long_document_goes_through_several_windows_each_sentence_scored_once(models):
    tok = models.extractor.tokenizer
    doc = models.nlp(LONG)
    sentences, spans = document_spans(doc)
    assert len(sentences) == 8
    windows, split = make_windows(tok, LONG, sentences, 0, max_tokens=64, overlap=1)
    assert split == 0 and len(windows) >= 3
    owned = [s for w in windows for s in w.owned]
    assert sorted(owned) == list(range(8))  # every sentence scored exactly once
    assert any(w.start < sentences[w.owned[0]][0] for w in windows[1:])  # later windows carry context
    for w in windows:
        n = len(tok(LONG[w.start : w.end])["input_ids"])
        assert n <= 64

    rex_small = RelationExtractor(models.extractor, models.subspaces, threshold=0.3, max_tokens=64, batch_windows=2)
    rex_big = RelationExtractor(models.extractor, models.subspaces, threshold=0.3, max_tokens=512)
    document = Document("long", LONG)
    small = next(iter(rex_small.run([(document, sentences, spans)])))
    big = next(iter(rex_big.run([(document, sentences, spans)])))
    keys = [(r.source, r.target, r.relation, r.sent_index) for r in small.relations]
    assert len(keys) == len(set(keys))  # no relation counted twice across windows
    assert rex_small.stats.windows >= 3 and rex_big.stats.windows == 1
    assert {r.sent_index for r in small.relations} == set(range(8))
    # windowing changes the context, not the bookkeeping: same order of magnitude of relations
    assert 0.5 <= len(small.relations) / max(len(big.relations), 1) <= 2.0


def test_over_long_sentence_is_split_into_pieces(models):
    tok = models.extractor.tokenizer
    text = "The list includes " + ", ".join(f"item{i}" for i in range(80)) + "."
    windows, split = make_windows(tok, text, [(0, len(text))], 0, max_tokens=48)
    assert split == 1 and len(windows) > 2
    assert all(len(tok(text[w.start : w.end])["input_ids"]) <= 48 for w in windows)
    assert windows[0].start == 0 and windows[-1].end == len(text)


def test_token_counts_in_one_call_equal_one_call_per_text(models):
    from pipeline.relations.windows import count_tokens_each

    tok = models.extractor.tokenizer
    texts = ["Marie Curie won the Nobel Prize.", "", "  ", "Antidisestablishmentarianism, naïve café.", LONG]
    one_by_one = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert count_tokens_each(tok, texts) == one_by_one
    assert count_tokens_each(tok, []) == []


def test_relations_are_within_sentences_and_never_self_pairs(models):
    import gc

    from pipeline.ingest import analyze_documents

    docs = [Document("d1", "Marie Curie won the Nobel Prize. She later founded the Radium Institute in Paris.")]
    assert gc.get_freeze_count() == 0
    stream = analyze_documents(docs, models)
    analysis = next(iter(stream))
    # while the stream runs, the objects alive at its start (the models) are frozen (gc_pause)
    assert gc.get_freeze_count() > 100_000
    assert list(stream) == []
    assert gc.get_freeze_count() == 0
    assert analysis.relations, "no relations at the default threshold on a clear sentence"
    for r in analysis.relations:
        a, b = analysis.spans[r.source], analysis.spans[r.target]
        assert a.key != b.key and a.sent_index == b.sent_index == r.sent_index
        assert 0.7 <= r.score <= 1.0


def test_untyped_relations_do_not_depend_on_the_batching(models):
    """Subspaces mode: windows grouped by length and cut by a token budget give the relations of one
    window per forward pass in document order (scores equal up to float rounding of the padding)."""
    from pipeline.text.spans import parse_documents

    texts = [LONG, "Marie Curie won the Nobel Prize. She later founded the Radium Institute in Paris.", "Hi."]
    parsed = list(parse_documents(models.nlp, [Document(f"d{i}", t) for i, t in enumerate(texts)]))

    def run(**kw):
        rex = RelationExtractor(models.extractor, models.subspaces, threshold=0.3, max_tokens=64, **kw)
        return [a.relations for a in rex.run(parsed)], rex.stats

    one, s_one = run(batch_windows=1, lookahead=1)
    assert s_one.windows >= 4 and sum(map(len, one)) > 10
    for kw in ({}, {"batch_tokens": 100, "lookahead": 1}):
        got, stats = run(**kw)
        assert stats.windows == s_one.windows and stats.tokens == s_one.tokens
        assert [[r[:3] + r[4:] for r in map(_fields, rels)] for rels in got] == [
            [r[:3] + r[4:] for r in map(_fields, rels)] for rels in one
        ]
        for rels_a, rels_b in zip(got, one):
            for a, b in zip(rels_a, rels_b):
                assert a.score == pytest.approx(b.score, abs=1e-5)


def _fields(r):
    return (r.source, r.target, r.relation, r.score, r.sent_index, r.unit)
