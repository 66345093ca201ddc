"""The CoNLL-U reader: columns, multiword tokens, empty nodes, offsets, documents, errors, real EWT."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.errors import DocumentError
from pipeline.text.conllu import (
    ConlluDocument,
    ConlluFormatError,
    ConlluSentence,
    parse_conllu,
    read_conllu,
    read_conllu_documents,
)

# Two documents. Sentence 1 has the multiword token "don't" (3-4 -> do + n't); sentence 2 has an
# empty node 5.1 (the elided "eats" of a gapping clause); sentence 3 has relation subtypes.
SAMPLE = """\
# newdoc id = doc-a
# sent_id = a-1
# text = So I don't know.
1\tSo\tso\tADV\tRB\t_\t5\tadvmod\t_\t_
2\tI\tI\tPRON\tPRP\tCase=Nom\t5\tnsubj\t_\t_
3-4\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
3\tdo\tdo\tAUX\tVBP\t_\t5\taux\t_\t_
4\tn't\tnot\tPART\tRB\t_\t5\tadvmod\t_\t_
5\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t.\t_\t5\tpunct\t_\t_

# sent_id = a-2
# text = Kim eats fish and Sam meat.
1\tKim\tKim\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\teats\teat\tVERB\tVBZ\t_\t0\troot\t_\t_
3\tfish\tfish\tNOUN\tNN\t_\t2\tobj\t_\t_
4\tand\tand\tCCONJ\tCC\t_\t5\tcc\t_\t_
5\tSam\tSam\tPROPN\tNNP\t_\t2\tconj\t_\t_
5.1\teats\teat\tVERB\tVBZ\t_\t_\t_\t2:conj\tCopyOf=2
6\tmeat\tmeat\tNOUN\tNN\t_\t5\torphan\t_\tSpaceAfter=No
7\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

# newdoc id = doc-b
# sent_id = b-1
# text = Her cat was picked up.
1\tHer\ther\tPRON\tPRP$\t_\t2\tnmod:poss\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t4\tnsubj:pass\t_\t_
3\twas\tbe\tAUX\tVBD\t_\t4\taux:pass\t_\t_
4\tpicked\tpick\tVERB\tVBN\t_\t0\troot\t_\t_
5\tup\tup\tADP\tRP\t_\t4\tcompound:prt\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_
"""


def _write(tmp_path: Path, content: str, name: str = "sample.conllu") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def _sentence(*, text: str | None, rows: list[str], header: str = "") -> str:
    """A one-sentence CoNLL-U string from tab-free rows written with spaces between columns."""
    lines = [header] if header else []
    if text is not None:
        lines.append(f"# text = {text}")
    lines += ["\t".join(row.split()) for row in rows]
    return "\n".join(lines) + "\n"


@pytest.fixture()
def sample_sentences(tmp_path: Path) -> list[ConlluSentence]:
    return list(read_conllu(_write(tmp_path, SAMPLE)))


def test_columns_ids_heads_and_subtyped_deprels(sample_sentences):
    assert [s.sent_id for s in sample_sentences] == ["a-1", "a-2", "b-1"]
    first = sample_sentences[0]
    assert [t.id for t in first.tokens] == [1, 2, 3, 4, 5, 6]
    assert [t.form for t in first.tokens] == ["So", "I", "do", "n't", "know", "."]
    assert [t.head for t in first.tokens] == [5, 5, 5, 5, 0, 5]
    assert first.tokens[3].lemma == "not" and first.tokens[3].upos == "PART" and first.tokens[3].xpos == "RB"
    assert first.tokens[4].misc == "SpaceAfter=No"
    third = sample_sentences[2]
    assert [t.deprel for t in third.tokens] == [
        "nmod:poss",
        "nsubj:pass",
        "aux:pass",
        "root",
        "compound:prt",
        "punct",
    ]


def test_multiword_token_members_share_the_surface_span(sample_sentences):
    first = sample_sentences[0]
    assert first.text == "So I don't know."
    spans = {t.form: (t.start_char, t.end_char) for t in first.tokens}
    assert spans == {
        "So": (0, 2),
        "I": (3, 4),
        "do": (5, 10),
        "n't": (5, 10),
        "know": (11, 15),
        ".": (15, 16),
    }
    assert first.text[5:10] == "don't"
    assert first.n_unaligned == 0


def test_empty_nodes_are_skipped_and_later_tokens_still_align(sample_sentences):
    second = sample_sentences[1]
    assert [t.id for t in second.tokens] == [1, 2, 3, 4, 5, 6, 7]
    assert [t.form for t in second.tokens].count("eats") == 1
    for token in second.tokens:
        assert second.text[token.start_char : token.end_char] == token.form
    assert (second.tokens[5].start_char, second.tokens[5].end_char) == (22, 26)  # "meat"


def test_newdoc_id_marks_only_the_first_sentence_of_a_document(sample_sentences):
    assert [s.newdoc_id for s in sample_sentences] == ["doc-a", None, "doc-b"]


def test_documents_group_sentences_and_give_sentence_offsets(tmp_path):
    docs = list(read_conllu_documents(_write(tmp_path, SAMPLE)))
    assert [d.id for d in docs] == ["doc-a", "doc-b"]
    assert [len(d.sentences) for d in docs] == [2, 1]
    assert docs[0].text == "So I don't know. Kim eats fish and Sam meat."
    assert docs[0].sentence_offsets() == [(0, 16), (17, 44)]
    for doc in docs:
        for sentence, (start, end) in zip(doc.sentences, doc.sentence_offsets()):
            assert doc.text[start:end] == sentence.text


def test_repeated_forms_align_left_to_right(tmp_path):
    content = _sentence(
        text="the cat and the dog",
        rows=[
            "1 the the DET DT _ 2 det _ _",
            "2 cat cat NOUN NN _ 0 root _ _",
            "3 and and CCONJ CC _ 5 cc _ _",
            "4 the the DET DT _ 5 det _ _",
            "5 dog dog NOUN NN _ 2 conj _ _",
        ],
    )
    (sentence,) = read_conllu(_write(tmp_path, content))
    spans = [(t.start_char, t.end_char) for t in sentence.tokens]
    assert spans == [(0, 3), (4, 7), (8, 11), (12, 15), (16, 19)]


def test_form_missing_from_text_gets_zero_length_span_and_is_counted(tmp_path):
    content = _sentence(
        text="Hello world.",
        rows=[
            "1 Hello hello INTJ UH _ 0 root _ _",
            "2 wrold world NOUN NN _ 1 vocative _ SpaceAfter=No",
            "3 . . PUNCT . _ 1 punct _ _",
        ],
    )
    (sentence,) = read_conllu(_write(tmp_path, content))
    assert sentence.n_unaligned == 1
    assert (sentence.tokens[1].start_char, sentence.tokens[1].end_char) == (5, 5)
    assert (sentence.tokens[2].start_char, sentence.tokens[2].end_char) == (11, 12)


def test_missing_text_and_sent_id_are_rebuilt(tmp_path):
    content = _sentence(
        text=None,
        rows=[
            "1 Hi hi INTJ UH _ 0 root _ SpaceAfter=No",
            "2 , , PUNCT , _ 1 punct _ _",
            "3-4 you're _ _ _ _ _ _ _ SpaceAfter=No",
            "3 you you PRON PRP _ 1 vocative _ _",
            "4 're be AUX VBP _ 3 cop _ _",
            "5 ! ! PUNCT . _ 1 punct _ _",
        ],
    )
    (sentence,) = read_conllu(_write(tmp_path, content, name="plain.conllu"))
    assert sentence.text == "Hi, you're!"
    assert sentence.sent_id == "plain-s1"
    assert (sentence.tokens[2].start_char, sentence.tokens[2].end_char) == (4, 10)


def test_file_without_newdoc_is_one_document_named_after_the_file(tmp_path):
    body = SAMPLE.replace("# newdoc id = doc-a\n", "").replace("# newdoc id = doc-b\n", "")
    docs = list(read_conllu_documents(_write(tmp_path, body, name="loose.conllu")))
    assert [d.id for d in docs] == ["loose"]
    assert len(docs[0].sentences) == 3


def test_sentences_before_first_newdoc_go_to_a_document_named_after_the_file(tmp_path):
    body = SAMPLE.replace("# newdoc id = doc-a\n", "")
    docs = list(read_conllu_documents(_write(tmp_path, body, name="head.conllu")))
    assert [(d.id, len(d.sentences)) for d in docs] == [("head", 2), ("doc-b", 1)]


def test_bom_crlf_and_string_input_parse_the_same(tmp_path):
    crlf = "\ufeff" + SAMPLE.replace("\n", "\r\n")
    from_file = list(read_conllu(_write(tmp_path, crlf)))
    from_lines = list(parse_conllu(SAMPLE.splitlines(), source="inline"))
    assert from_file == from_lines


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("1\tSo\tso\tADV\tRB\t_\t5\tadvmod\t_", "expected 10 tab-separated columns, found 9"),
        ("1\tSo\tso\tADV\tRB\t_\tfive\tadvmod\t_\t_", "HEAD column 'five' is not an integer"),
        ("1 So so ADV RB _ 5 advmod _ _", "expected 10 tab-separated columns, found 1"),
        ("x\tSo\tso\tADV\tRB\t_\t5\tadvmod\t_\t_", "ID column 'x'"),
    ],
)
def test_malformed_line_raises_document_error_with_file_and_line(tmp_path, bad_line, problem):
    lines = SAMPLE.splitlines()
    index = lines.index("1\tSo\tso\tADV\tRB\t_\t5\tadvmod\t_\t_")
    lines[index] = bad_line
    path = _write(tmp_path, "\n".join(lines) + "\n", name="broken.conllu")
    with pytest.raises(DocumentError) as info:
        list(read_conllu(path))
    message = str(info.value)
    assert message.startswith(f"{path}:{index + 1}: ")
    assert problem in message
    assert isinstance(info.value, ConlluFormatError) and info.value.line == index + 1


def test_invalid_utf8_raises_document_error_with_line(tmp_path):
    path = tmp_path / "latin.conllu"
    path.write_bytes(SAMPLE.replace("Kim eats", "Kim mangé").encode("latin-1"))
    expected = r"latin\.conllu:13: not valid UTF-8 \(byte 0xE9 at file offset \d+"
    with pytest.raises(DocumentError, match=expected):
        list(read_conllu(path))


# --- the real corpus -----------------------------------------------------------------------------


def test_ewt_dev_counts_sentences_words_and_documents(ewt_dev_path):
    sentences = list(read_conllu(ewt_dev_path))
    assert len(sentences) == 2001
    # An independent count of word lines (integer ids) straight from the file.
    raw = ewt_dev_path.read_text(encoding="utf-8")
    assert sum(len(s.tokens) for s in sentences) == len(re.findall(r"^\d+\t", raw, flags=re.M))
    assert len({s.sent_id for s in sentences}) == 2001
    docs = list(read_conllu_documents(ewt_dev_path))
    assert len(docs) == 318
    assert sum(len(d.sentences) for d in docs) == 2001
    assert docs[0].id == "weblog-blogspot.com_nominations_20041117172713_ENG_20041117_172713"
    assert docs[0].sentences[0].text == "From the AP comes this story :"
    ap = docs[0].sentences[0].tokens[2]
    assert (ap.form, ap.head, ap.deprel, ap.start_char, ap.end_char) == ("AP", 4, "obl", 9, 11)


def test_ewt_dev_offsets_lie_inside_the_text_and_cover_it(ewt_dev_path):
    sentences = list(read_conllu(ewt_dev_path))
    n_tokens = sum(len(s.tokens) for s in sentences)
    n_unaligned = sum(s.n_unaligned for s in sentences)
    print(f"EWT dev: {n_unaligned} unaligned of {n_tokens} tokens")
    assert n_unaligned <= n_tokens // 1000  # annotation quirks only: at most 0.1%
    for sentence in sentences:
        text = sentence.text
        covered = [False] * len(text)
        for token in sentence.tokens:
            assert 0 <= token.start_char <= token.end_char <= len(text), sentence.sent_id
            for i in range(token.start_char, token.end_char):
                covered[i] = True
        # Aligned spans are in order and everything they leave out is whitespace: the alignment
        # found each token where it is, not merely somewhere later in the sentence.
        starts = [t.start_char for t in sentence.tokens]
        assert starts == sorted(starts), sentence.sent_id
        if sentence.n_unaligned == 0:
            assert all(c or text[i].isspace() for i, c in enumerate(covered)), sentence.sent_id


def test_ewt_dev_multiword_tokens_map_to_their_surface_form(ewt_dev_path):
    sentences = list(read_conllu(ewt_dev_path))
    surface = [
        sentence.text[t.start_char : t.end_char]
        for sentence in sentences
        for t in sentence.tokens
        if sentence.text[t.start_char : t.end_char] != t.form
    ]
    # Only multiword-token members differ from their own form: one entry per word under a range.
    raw = ewt_dev_path.read_text(encoding="utf-8")
    ranges = re.findall(r"^(\d+)-(\d+)\t", raw, flags=re.M)
    assert len(ranges) == 359
    assert len(surface) == sum(int(last) - int(first) + 1 for first, last in ranges)
    assert surface.count("didn't") >= 2 and surface.count("company's") >= 2


def test_document_text_joins_sentences_with_one_space():
    doc = ConlluDocument(
        "d",
        [
            ConlluSentence("s1", "A b.", [], None),
            ConlluSentence("s2", "C.", [], None),
        ],
    )
    assert doc.text == "A b. C."
    assert doc.sentence_offsets() == [(0, 4), (5, 7)]
