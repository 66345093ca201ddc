"""Scoring the graph against gold trees: exact counts on a hand-built graph, invariants on a real ingest."""

from __future__ import annotations

import inspect
import json

import pytest
from typer.testing import CliRunner

from pipeline import cli
from pipeline.evaluation.graph_score import GraphScore, edge_relation, score_graph, split_conllu
from pipeline.graph import KnowledgeGraph
from pipeline.text.conllu import read_conllu_documents
from pipeline.types import Document, DocumentAnalysis, Span, SpanRelation, content_hash

# Three documents; the graph holds the first two. Columns: ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC.
GOLD = """\
# newdoc id = docA
# sent_id = a-1
# text = Marie won the prize.
1	Marie	Marie	PROPN	_	_	2	nsubj	_	_
2	won	win	VERB	_	_	0	root	_	_
3	the	the	DET	_	_	4	det	_	_
4	prize	prize	NOUN	_	_	2	obj	_	SpaceAfter=No
5	.	.	PUNCT	_	_	2	punct	_	_

# sent_id = a-2
# text = Pierre saw her.
1	Pierre	Pierre	PROPN	_	_	2	nsubj	_	_
2	saw	see	VERB	_	_	0	root	_	_
3	her	she	PRON	_	_	2	obj	_	SpaceAfter=No
4	.	.	PUNCT	_	_	2	punct	_	_

# newdoc id = docB
# sent_id = b-1
# text = The old dog barked.
1	The	the	DET	_	_	3	det	_	_
2	old	old	ADJ	_	_	3	amod	_	_
3	dog	dog	NOUN	_	_	4	nsubj	_	_
4	barked	bark	VERB	_	_	0	root	_	SpaceAfter=No
5	.	.	PUNCT	_	_	4	punct	_	_

# sent_id = b-2
# text = I don't know.
1	I	I	PRON	_	_	4	nsubj	_	_
2-3	don't	_	_	_	_	_	_	_	_
2	do	do	AUX	_	_	4	aux	_	_
3	n't	not	PART	_	_	4	advmod	_	_
4	know	know	VERB	_	_	0	root	_	SpaceAfter=No
5	.	.	PUNCT	_	_	4	punct	_	_

# newdoc id = docC
# sent_id = c-1
# text = Nothing here.
1	Nothing	nothing	PRON	_	_	0	root	_	_
2	here	here	ADV	_	_	1	advmod	_	SpaceAfter=No
3	.	.	PUNCT	_	_	1	punct	_	_
"""

# (key, kind, surface, sentence) per mention, in text order.
MENTIONS = {
    "docA": [
        ("entity:PERSON:marie", "entity", "Marie", 0),
        ("word:win", "word", "won", 0),
        ("noun_chunk:prize", "noun_chunk", "the prize", 0),
        ("entity:PERSON:pierre", "entity", "Pierre", 1),
        ("word:see", "word", "saw", 1),
        ("pronoun:she", "pronoun", "her", 1),
    ],
    "docB": [
        ("noun_chunk:old dog", "noun_chunk", "The old dog", 0),
        ("word:bark", "word", "barked", 0),
        ("pronoun:i", "pronoun", "I", 1),
        ("word:do", "word", "don't", 1),
        ("word:know", "word", "know", 1),
    ],
}
# (source mention, target mention, relation): source = the span holding the head, as typed graphs are.
RELATIONS = {
    "docA": [
        (1, 0, "nsubj"),  # won -> Marie: right, head in the source
        (1, 2, "obj"),  # won -> the prize: right (the det arc inside the chunk is not between the spans)
        (0, 2, "nsubj"),  # Marie -> the prize: no gold arc between them at all
        (4, 3, "obj"),  # saw -> Pierre: a gold arc, but nsubj (wrong label)
        (5, 4, "obj"),  # her -> saw: the gold obj arc, the wrong way round (head in the target)
    ],
    "docB": [
        (1, 0, "nsubj"),  # barked -> The old dog: right (dog is the chunk's head word)
        (4, 2, "nsubj"),  # know -> I: right, pronoun end
        (4, 3, "aux"),  # know -> don't: right; the multiword token's words do + n't both map to "don't"
    ],
}


def analysis(doc_id: str, text: str, relation_ids: dict[str, str] | None = None) -> DocumentAnalysis:
    sentences, at = [], 0
    for part in text.split(". "):
        end = at + len(part) + (0 if part.endswith(".") else 1)
        sentences.append((at, end))
        at = end + 1
    spans, cursor = [], 0
    for key, kind, surface, sent in MENTIONS[doc_id]:
        start = text.index(surface, cursor)
        cursor = start + len(surface)
        spans.append(Span(key, surface, "", kind, sent, start, cursor))  # type: ignore[arg-type]
    rename = relation_ids or {}
    relations = [
        SpanRelation(s, t, rename.get(r, r), 0.9, spans[s].sent_index, unit="u") for s, t, r in RELATIONS[doc_id]
    ]
    return DocumentAnalysis(Document(doc_id, text), sentences, spans, relations)


@pytest.fixture()
def gold(tmp_path):
    path = tmp_path / "gold.conllu"
    path.write_text(GOLD, encoding="utf-8")
    return path


def texts(path) -> dict[str, str]:
    return {d.id: d.text for d in read_conllu_documents(path)}


def build(path, relation_ids=None, labels=None, extra=()) -> tuple[KnowledgeGraph, dict[str, list[Span]]]:
    kg = KnowledgeGraph(relation_labels=labels)
    analyses = [analysis(doc_id, texts(path)[doc_id], relation_ids) for doc_id in ("docA", "docB")]
    for a in analyses:
        a.relations.extend(extra_rel for d, extra_rel in extra if d == a.document.id)
        kg.add_analysis(a)
    return kg, {a.document.id: a.spans for a in analyses}


def check_counts(score: GraphScore) -> None:
    nsubj, obj, aux = score.relations["nsubj"], score.relations["obj"], score.relations["aux"]
    assert (nsubj.occurrences, nsubj.labelled, nsubj.directed, nsubj.unlabelled) == (4, 3, 3, 3)
    assert (obj.occurrences, obj.labelled, obj.directed, obj.unlabelled) == (3, 2, 1, 3)
    assert (aux.occurrences, aux.labelled, aux.directed, aux.unlabelled) == (1, 1, 1, 1)
    # Linkable: Marie, Pierre, dog, I (nsubj); prize, her (obj); do (aux); n't (advmod). Not: the det and
    # amod arcs inside one chunk, punct, docC (not in the graph). Pierre's nsubj arc got an obj edge.
    assert (nsubj.linkable, nsubj.recalled, nsubj.recall) == (4, 3, 0.75)
    assert (obj.linkable, obj.recalled, obj.recall) == (2, 2, 1.0)
    assert (score.relations["advmod"].linkable, score.relations["advmod"].recalled) == (1, 0)
    assert score.relations["det"].linkable == 0 and score.relations["amod"].linkable == 0
    assert nsubj.labelled_precision == 0.75 and obj.direction_accuracy == 0.5
    assert score.unlabelled_linkable == 8 and score.unlabelled_recalled == 8  # know -> don't hits n't too
    assert (score.with_pronoun.occurrences, score.with_pronoun.labelled) == (2, 2)
    assert score.with_pronoun.linkable == 2  # her, I
    assert (score.documents, score.sentences, score.gold_documents_not_in_graph) == (2, 4, 1)
    assert nsubj.rate(score.sentences) == 2000.0
    assert score.unmapped_occurrences == 0 and score.hits_not_linkable == 0 and score.cited_not_rederived == 0


def test_exact_counts_on_a_typed_graph(gold, tmp_path):
    kg, mentions = build(gold)
    score = score_graph(kg, gold, mentions=mentions)
    assert score.mode == "typed" and score.mentions_source == "given"
    check_counts(score)
    o = score.overall
    assert (o.occurrences, o.labelled, o.directed, o.unlabelled) == (8, 6, 5, 7)
    assert (o.linkable, o.recalled) == (8, 6)  # all 8 linkable arcs carry relations of the closed set
    assert score.unnamed.occurrences == 0
    bar = score.bar()  # 6/8 = 0.75 overall; no relation has 50 occurrences; 2,000 nsubj and 1,500 obj per 2,000
    assert bar["met"] and [c["met"] for c in bar["checks"]] == [True, True, True]
    strict = score.bar(min_occurrences=1)  # now every relation is checked: obj's 2/3 falls short
    assert not strict["met"]
    assert [(c["check"].split(" (")[0], c["met"]) for c in strict["checks"][:4]] == [
        ("labelled precision, all occurrences", True),
        ("labelled precision, nsubj", True),
        ("labelled precision, obj", False),
        ("labelled precision, aux", True),
    ]
    # The same figures from the node-link file, and the JSON is plain JSON.
    path = kg.to_node_link(tmp_path / "g.json")
    again = score_graph(path, gold, mentions=mentions)
    assert again.to_json() == score.to_json()
    json.dumps(score.to_json())
    assert "| nsubj | 4 |" in score.to_markdown()


def test_untyped_graph_reads_the_relation_off_the_label(gold):
    ids = {"nsubj": "L1H1k4", "obj": "L2H2k8", "aux": "L3H0k2"}
    labels = {"L1H1k4": "nsubj (0.81)", "L2H2k8": "obj (0.70)", "L3H0k2": "aux (0.9)"}
    # One more edge from a subspace without a label: won -> the prize in docA.
    extra = [("docA", SpanRelation(1, 2, "L0H5k9", 0.8, 0))]
    kg, mentions = build(gold, ids, labels, extra)
    assert edge_relation("L0H5k9", kg.relation_labels) is None and edge_relation("obj", {}) == "obj"
    score = score_graph(kg, gold, mentions=mentions)
    assert score.mode == "subspaces"
    check_counts(score)
    u = score.unnamed
    assert (u.occurrences, u.labelled, u.directed, u.unlabelled) == (1, 0, 0, 1)  # labelled-wrong
    assert (score.overall.occurrences, score.overall.labelled, score.overall.unlabelled) == (9, 6, 8)
    assert "(unlabelled subspace)" in score.to_markdown()
    # Other labels for the same graph: without any, every occurrence is unnamed and labelled-wrong.
    bare = score_graph(kg, gold, mentions=mentions, relation_labels={})
    assert bare.unnamed.occurrences == 9 and bare.overall.labelled == 0 and bare.overall.unlabelled == 8
    assert bare.relations["nsubj"].linkable == 4 and bare.relations["nsubj"].recalled == 0


def test_a_document_with_another_text_is_refused(gold):
    kg = KnowledgeGraph()
    a = analysis("docA", texts(gold)["docA"])
    changed = Document("docA", a.document.text.replace("Marie", "Maria"))
    kg.add_analysis(DocumentAnalysis(changed, a.sentences, a.spans, a.relations))
    with pytest.raises(ValueError, match="another text"):
        score_graph(kg, gold, mentions={})
    kg2 = KnowledgeGraph()
    kg2.add_analysis(DocumentAnalysis(Document("docZ", "Marie won."), [(0, 10)], [], []))
    with pytest.raises(ValueError, match="not in"):
        score_graph(kg2, gold, mentions={})


def test_split_conllu_writes_the_parts_unchanged(gold, tmp_path):
    held = split_conllu(gold, "heldout", tmp_path / "held.conllu")
    select = split_conllu(gold, "select", tmp_path / "select.conllu")
    assert held.documents == ["docB"] and held.n_sentences == 2
    assert select.documents == ["docA", "docC"] and select.n_sentences == 3
    original = {d.id: d for d in read_conllu_documents(gold)}
    for part in (held, select):
        for d in read_conllu_documents(part.path):
            assert d.sentences == original[d.id].sentences
    assert split_conllu(gold, "select", tmp_path / "one.conllu", max_sentences=1).n_sentences == 1


def test_real_ingest_of_held_out_documents_scores_consistently(ewt_dev_path, tmp_path):
    part = split_conllu(ewt_dev_path, "heldout", tmp_path / "held.conllu", max_sentences=20)
    assert len(part.documents) == 3  # 5 + 5 + 10 sentences
    args = ["ingest", str(part.path), "--out", str(tmp_path / "g.json"), "--fresh"]
    if "relation_types" in inspect.signature(cli.ingest).parameters:  # once typed relations are the default
        args += ["--relation-types", "subspaces"]
    r = CliRunner().invoke(cli.app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    kg = KnowledgeGraph.from_node_link(tmp_path / "g.json")
    score = score_graph(kg, part.path)  # mentions derived again with spaCy

    gold_texts = texts(part.path)
    assert kg.documents == {d: content_hash(gold_texts[d]) for d in part.documents}  # the texts match
    contributions = kg.provenance().contributions  # type: ignore[union-attr]
    n_evidence = sum(len(items) for c in contributions for items in c.edges.values())
    assert n_evidence > 0
    assert score.overall.occurrences == n_evidence == sum(c for _, _, c in kg.g.edges(data="count"))
    assert n_evidence >= sum(len(d["evidence"]) for _, _, d in kg.g.edges(data=True))  # not only the kept ones
    assert sum(r.occurrences for r in score.relations.values()) + score.unnamed.occurrences == n_evidence
    assert (score.documents, score.sentences, score.gold_documents_not_in_graph) == (3, 20, 0)
    assert score.unmapped_occurrences == 0  # every occurrence maps to gold words on both sides
    assert score.cited_not_rederived == 0 and score.hits_not_linkable == 0
    assert score.mentions == kg.summary()["mentions"]
    for row in [*score.relations.values(), score.unnamed, score.overall]:
        assert row.directed <= row.labelled <= row.unlabelled <= row.occurrences
        assert row.recalled <= row.linkable
        for value in (row.labelled_precision, row.unlabelled_precision, row.direction_accuracy, row.recall):
            assert value is None or 0.0 <= value <= 1.0
    assert score.overall.linkable > 0
