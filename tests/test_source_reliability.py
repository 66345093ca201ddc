"""Reliability cases of reading documents (docs/reliability.md): size limit, id collisions, XML-illegal characters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.text.sources import MAX_DOCUMENT_CHARS, iter_documents, load_documents, xml_safe
from pipeline.types import Document, SkippedInput

CONLLU_DOC = """\
# newdoc id = {doc_id}
# sent_id = s1
# text = Paris is big.
1\tParis\tParis\tPROPN\tNNP\t_\t3\tnsubj\t_\t_
2\tis\tbe\tAUX\tVBZ\t_\t3\tcop\t_\t_
3\tbig\tbig\tADJ\tJJ\t_\t0\troot\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

"""


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _jsonl(path: Path, *records: dict[str, str]) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in records))


# --- case 1: one size limit, the one spaCy accepts ------------------------------------------------


def test_the_default_limit_is_spacys_million_characters(tmp_path):
    assert MAX_DOCUMENT_CHARS == 1_000_000
    big = _write(tmp_path / "big.txt", "a" * (MAX_DOCUMENT_CHARS + 1))
    exact = _write(tmp_path / "exact.txt", "a" * MAX_DOCUMENT_CHARS)
    docs, skipped = load_documents([big, exact])
    assert [d.id for d in docs] == ["exact.txt"]
    assert skipped == [SkippedInput(str(big), "too_large", f"{MAX_DOCUMENT_CHARS + 1} characters, limit 1000000")]


# --- case 2: document ids never collide silently ------------------------------------------------


def test_a_single_folder_keeps_relative_ids(tmp_path):
    _write(tmp_path / "a" / "x.txt", "one")
    _write(tmp_path / "a" / "sub" / "y.txt", "two")
    docs, skipped = load_documents([tmp_path / "a"])
    assert [d.id for d in docs] == ["sub/y.txt", "x.txt"] and skipped == []


def test_same_file_name_under_two_roots_keeps_both_prefixed_by_root_name(tmp_path):
    a = _write(tmp_path / "a" / "x.txt", "from a")
    b = _write(tmp_path / "b" / "x.txt", "from b")
    docs, skipped = load_documents([a.parent, b.parent])
    assert [(d.id, d.text, d.source) for d in docs] == [
        ("a/x.txt", "from a", str(a)),
        ("b/x.txt", "from b", str(b)),
    ]
    assert skipped == []


def test_roots_with_the_same_name_fall_back_to_the_path_as_given(tmp_path):
    one = _write(tmp_path / "one" / "data" / "x.txt", "first")
    two = _write(tmp_path / "two" / "data" / "x.txt", "second")
    other = _write(tmp_path / "notes" / "n.txt", "third")
    docs, skipped = load_documents([one.parent, two.parent, other.parent])
    assert [d.id for d in docs] == [
        f"{one.parent.as_posix()}/x.txt",
        f"{two.parent.as_posix()}/x.txt",
        "notes/n.txt",  # its name is unique: prefixed by the name only
    ]
    assert skipped == []


def test_files_given_directly_with_the_same_name_fall_back_to_the_path_as_given(tmp_path):
    a = _write(tmp_path / "a" / "x.txt", "from a")
    b = _write(tmp_path / "b" / "x.txt", "from b")
    c = _write(tmp_path / "c" / "only.txt", "alone")
    docs, skipped = load_documents([a, b, c])
    assert [d.id for d in docs] == [a.as_posix(), b.as_posix(), "only.txt"] and skipped == []


def test_same_jsonl_id_in_two_files_skips_the_second_naming_both(tmp_path):
    first = _jsonl(tmp_path / "one.jsonl", {"id": "d1", "text": "First."}, {"id": "d2", "text": "Second."})
    second = _jsonl(tmp_path / "two.jsonl", {"id": "d3", "text": "Third."}, {"id": "d1", "text": "Other d1."})
    docs, skipped = load_documents([first, second])
    assert [(d.id, d.text) for d in docs] == [("d1", "First."), ("d2", "Second."), ("d3", "Third.")]
    (skip,) = skipped
    assert (skip.source, skip.reason) == (f"{second}:2", "duplicate_id")
    assert "'d1'" in skip.detail and f"{first}:1" in skip.detail


def test_jsonl_id_equal_to_a_file_id_is_skipped_naming_both(tmp_path):
    folder = tmp_path / "corpus"
    records = _jsonl(folder / "records.jsonl", {"id": "x.txt", "text": "A record."}, {"id": "r2", "text": "Kept."})
    txt = _write(folder / "x.txt", "A file.")
    docs, skipped = load_documents([folder])
    # records.jsonl sorts before x.txt: the record is read first and keeps the id
    assert [(d.id, d.text) for d in docs] == [("x.txt", "A record."), ("r2", "Kept.")]
    (skip,) = skipped
    assert (skip.source, skip.reason) == (str(txt), "duplicate_id")
    assert "'x.txt'" in skip.detail and f"{records}:1" in skip.detail


def test_duplicate_ids_inside_one_jsonl_file_are_duplicate_id_skips(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", {"id": "d1", "text": "One."}, {"id": "d1", "text": "Again."})
    docs, skipped = load_documents([path])
    assert [d.text for d in docs] == ["One."]
    assert [(s.source, s.reason) for s in skipped] == [(f"{path}:2", "duplicate_id")]
    assert f"{path}:1" in skipped[0].detail


def test_conllu_newdoc_id_colliding_with_jsonl_id_is_skipped(tmp_path):
    records = _jsonl(tmp_path / "a.jsonl", {"id": "news-1", "text": "Record."})
    treebank = _write(tmp_path / "b.conllu", CONLLU_DOC.format(doc_id="news-1") + CONLLU_DOC.format(doc_id="news-2"))
    docs, skipped = load_documents([records, treebank])
    assert [d.id for d in docs] == ["news-1", "news-2"]
    (skip,) = skipped
    assert (skip.reason, skip.source) == ("duplicate_id", str(treebank))
    assert "'news-1'" in skip.detail and f"{records}:1" in skip.detail


def test_the_same_folder_given_twice_reports_every_second_copy(tmp_path):
    folder = tmp_path / "a"
    _write(folder / "x.txt", "x")
    docs, skipped = load_documents([folder, folder])
    # The two roots share a name and a path: the second copy cannot get an id of its own.
    assert [d.id for d in docs] == [f"{folder.as_posix()}/x.txt"]
    assert [s.reason for s in skipped] == ["duplicate_id"]


# --- case 3: XML-illegal characters --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("a\x00b", "a b"),
        ("\x1b[31mred\x1b[0m", " [31mred [0m"),
        ("tab\tnl\ncr\r", "tab\tnl\ncr\r"),  # the three legal controls stay
        ("v\vf\f", "v f "),  # vertical tab and form feed are not allowed in XML 1.0
        ("\ud800x\udfff", "\ufffdx\ufffd"),  # lone surrogates (JSON escapes can make them)
        ("\ufffe\uffff\ufffd", "\ufffd\ufffd\ufffd"),
        ("del\x7f é 🏅 \x85", "del\x7f é 🏅 \x85"),  # legal in XML 1.0, kept
    ],
)
def test_xml_safe_replaces_each_illegal_code_point_keeping_length(raw, clean):
    safe, replaced = xml_safe(raw)
    assert (safe, len(safe)) == (clean, len(raw))
    assert replaced == sum(a != b for a, b in zip(raw, safe, strict=True))


def test_nul_after_the_sniffed_head_is_replaced_and_counted(tmp_path):
    text = "Ada Lovelace met Charles Babbage. " * 300  # over 8 KiB before the NUL
    path = _write(tmp_path / "late-nul.txt", text + "\x00\x00London.")
    doc = _one_document(path)
    assert doc.text == text + "  London." and "\x00" not in doc.text
    assert doc.replaced_chars == 2


def test_jsonl_text_and_id_with_escaped_controls_are_cleaned(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", {"id": "d\u00001", "text": "Ada\u0000 met \x1b[1mBabbage\x1b[0m.\ud800"})
    doc = _one_document(path)
    assert doc.id == "d 1"
    assert doc.text == "Ada  met  [1mBabbage [0m.\ufffd"
    assert doc.replaced_chars == 4 and doc.meta == {}


def test_clean_documents_have_no_replacement_count(tmp_path):
    doc = _one_document(_write(tmp_path / "ok.txt", "Plain text."))
    assert doc.replaced_chars == 0


def _one_document(path: Path) -> Document:
    (item,) = list(iter_documents([path]))
    assert isinstance(item, Document), item
    return item
