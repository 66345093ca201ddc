"""Reading documents from real files and folders: formats, ids, order, and every kind of skip."""

from __future__ import annotations

import codecs
import json
import logging
from pathlib import Path

import pytest

from pipeline.errors import DocumentError
from pipeline.text.conllu import read_conllu_documents
from pipeline.text.sources import iter_documents, load_documents
from pipeline.types import Document, SkippedInput

# The first 33 bytes of a 1x1 PNG: signature, then the IHDR chunk (full of NUL bytes).
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"

CONLLU = """\
# newdoc id = news-1
# sent_id = news-1-s1
# text = Marie Curie won.
1\tMarie\tMarie\tPROPN\tNNP\t_\t3\tnsubj\t_\t_
2\tCurie\tCurie\tPROPN\tNNP\t_\t1\tflat\t_\t_
3\twon\twin\tVERB\tVBD\t_\t0\troot\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = news-1-s2
# text = She didn't stop.
1\tShe\tshe\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdidn't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdid\tdo\tAUX\tVBD\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tstop\tstop\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# newdoc id = news-2
# sent_id = news-2-s1
# text = Paris is big.
1\tParis\tParis\tPROPN\tNNP\t_\t3\tnsubj\t_\t_
2\tis\tbe\tAUX\tVBZ\t_\t3\tcop\t_\t_
3\tbig\tbig\tADJ\tJJ\t_\t0\troot\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_
"""


def _one(paths, **kwargs) -> Document | SkippedInput:
    (item,) = list(iter_documents(paths, **kwargs))
    return item


def _write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- formats and ids -----------------------------------------------------------------------------


def test_txt_given_directly_is_one_document_named_after_the_file(tmp_path):
    text = "Marie Curie worked in Paris.\n\tShe won\u00a0two Nobel prizes 🏅.  \n"
    path = _write_bytes(tmp_path / "sub" / "curie.txt", text.encode("utf-8"))
    doc = _one([path])
    assert doc == Document("curie.txt", text, source=str(path))
    assert doc.text == text  # tabs, no-break space, emoji and trailing spaces kept exactly


def test_md_file_is_read_as_plain_text(tmp_path):
    path = _write_bytes(tmp_path / "notes.MD", b"# Title\n\nSome *markdown* text.\n")
    doc = _one([path])
    assert isinstance(doc, Document)
    assert (doc.id, doc.text) == ("notes.MD", "# Title\n\nSome *markdown* text.\n")


def test_a_single_path_string_is_accepted(tmp_path):
    path = _write_bytes(tmp_path / "a.txt", b"alpha")
    assert _one(str(path)) == Document("a.txt", "alpha", source=str(path))


def test_folder_is_walked_recursively_in_sorted_order_with_relative_ids(tmp_path, caplog):
    root = tmp_path / "corpus"
    # Written in reverse order so the result cannot come from creation order.
    _write_bytes(root / "notes.pdf", b"%PDF-1.4")
    _write_bytes(root / "c.md", b"c")
    _write_bytes(root / "b.txt", b"b")
    _write_bytes(root / "a" / "y.md", b"y")
    _write_bytes(root / "a" / "x" / "deep.txt", b"deep")
    _write_bytes(root / "a" / "README.txt", b"ignored")
    _write_bytes(root / ".hidden.txt", b"ignored")
    _write_bytes(root / ".git" / "config.txt", b"ignored")
    _write_bytes(root / "LICENSE", b"ignored")
    _write_bytes(root / "NOTICE.md", b"ignored")
    _write_bytes(root / "readme.md", b"ignored")
    with caplog.at_level(logging.WARNING, logger="qkgraph.sources"):
        items = list(iter_documents([root]))
    summary = [(type(i).__name__, i.id if isinstance(i, Document) else i.reason) for i in items]
    assert summary == [
        ("Document", "a/x/deep.txt"),
        ("Document", "a/y.md"),
        ("Document", "b.txt"),
        ("Document", "c.md"),
        ("SkippedInput", "unsupported"),
    ]
    assert items[0].text == "deep" and items[0].source == str(root / "a" / "x" / "deep.txt")
    assert items[-1].source == str(root / "notes.pdf") and "'.pdf'" in items[-1].detail
    # Only the unsupported file is reported; ignored housekeeping files leave no trace.
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped {root / 'notes.pdf'} (unsupported): {items[-1].detail}"
    ]


def test_readme_given_explicitly_is_read(tmp_path):
    path = _write_bytes(tmp_path / "README.md", b"Read me.")
    assert _one([path]) == Document("README.md", "Read me.", source=str(path))


def test_unsupported_file_given_explicitly_is_skipped(tmp_path):
    path = _write_bytes(tmp_path / "table.csv", b"a,b\n1,2\n")
    item = _one([path])
    assert isinstance(item, SkippedInput) and (item.source, item.reason) == (str(path), "unsupported")
    assert "'.csv'" in item.detail


def test_several_paths_keep_the_order_given(tmp_path):
    second = _write_bytes(tmp_path / "z" / "one.txt", b"one")
    first = _write_bytes(tmp_path / "a.txt", b"a")
    docs, skipped = load_documents([second.parent, first])
    # With several roots, a folder's files are prefixed by its name (docs/reliability.md).
    assert [d.id for d in docs] == ["z/one.txt", "a.txt"] and skipped == []


def test_jsonl_lines_become_documents_and_bad_lines_are_skipped_alone(tmp_path, caplog):
    lines = [
        json.dumps({"id": "d1", "text": "First text.", "lang": "en", "year": 1903}),
        "",
        "   ",
        "{not json",
        json.dumps({"id": "d2", "text": "Second\r\ntext."}),
        json.dumps({"id": "d3"}),
        json.dumps(["id", "text"]),
        json.dumps({"id": 7, "text": "numeric id"}),
        json.dumps({"id": "d1", "text": "Same id again."}),
        json.dumps({"id": "d4", "text": "Last."}),
    ]
    path = _write_bytes(tmp_path / "docs.jsonl", ("\n".join(lines) + "\n").encode("utf-8"))
    with caplog.at_level(logging.WARNING, logger="qkgraph.sources"):
        docs, skipped = load_documents([path])
    assert [(d.id, d.text, d.source) for d in docs] == [
        ("d1", "First text.", f"{path}:1"),
        ("d2", "Second\ntext.", f"{path}:5"),
        ("d4", "Last.", f"{path}:10"),
    ]
    assert docs[0].meta == {"lang": "en"}  # string fields only
    assert [(s.source, s.reason) for s in skipped] == [
        (f"{path}:4", "malformed"),
        (f"{path}:6", "malformed"),
        (f"{path}:7", "malformed"),
        (f"{path}:8", "malformed"),
        (f"{path}:9", "duplicate_id"),
    ]
    assert "not JSON" in skipped[0].detail
    assert "'text'" in skipped[1].detail
    assert f"document id 'd1' is already taken by the document from {path}:1, which is kept" == skipped[4].detail
    assert len(caplog.records) == 5 and all(str(path) in r.getMessage() for r in caplog.records)


def test_jsonl_empty_and_too_large_texts_are_skipped_per_line(tmp_path):
    lines = [
        json.dumps({"id": "e", "text": " \n "}),
        json.dumps({"id": "big", "text": "x" * 11}),
        json.dumps({"id": "ok", "text": "x" * 10}),
    ]
    path = _write_bytes(tmp_path / "d.jsonl", "\n".join(lines).encode("utf-8"))
    items = list(iter_documents([path], max_chars=10))
    assert [(type(i).__name__, getattr(i, "reason", None)) for i in items] == [
        ("SkippedInput", "empty"),
        ("SkippedInput", "too_large"),
        ("Document", None),
    ]


def test_jsonl_line_with_bad_utf8_is_skipped_alone(tmp_path):
    good = json.dumps({"id": "a", "text": "fine"}).encode("utf-8") + b"\n"
    prefix = b'{"id": "b", "text": "caf'
    bad = prefix + b"\xe9" + b'"}\n'
    path = _write_bytes(tmp_path / "mixed.jsonl", good + bad + good.replace(b'"a"', b'"c"'))
    docs, skipped = load_documents([path])
    assert [d.id for d in docs] == ["a", "c"]
    assert [(s.source, s.reason) for s in skipped] == [(f"{path}:2", "encoding")]
    assert f"byte offset {len(good) + len(prefix)} (line 2)" in skipped[0].detail


def test_conllu_gives_one_document_per_newdoc(tmp_path):
    path = _write_bytes(tmp_path / "news.conllu", CONLLU.encode("utf-8"))
    docs, skipped = load_documents([path])
    assert skipped == []
    assert [(d.id, d.text, d.source) for d in docs] == [
        ("news-1", "Marie Curie won. She didn't stop.", str(path)),
        ("news-2", "Paris is big.", str(path)),
    ]


def test_conllu_duplicate_newdoc_id_and_malformed_line(tmp_path):
    duplicated = CONLLU.replace("newdoc id = news-2", "newdoc id = news-1")
    path = _write_bytes(tmp_path / "dup.conllu", duplicated.encode("utf-8"))
    items = list(iter_documents([path]))
    assert [type(i).__name__ for i in items] == ["Document", "SkippedInput"]
    assert items[1].reason == "duplicate_id" and "document id 'news-1' is already taken" in items[1].detail

    broken = CONLLU.replace("3\tbig\tbig\tADJ\tJJ\t_\t0", "3\tbig\tbig\tADJ\tJJ\t_\tzero")
    path = _write_bytes(tmp_path / "broken.conllu", broken.encode("utf-8"))
    items = list(iter_documents([path]))
    # A broken file is rejected whole, even the complete document before the bad line.
    assert [type(i).__name__ for i in items] == ["SkippedInput"]
    line = broken.splitlines().index("3\tbig\tbig\tADJ\tJJ\t_\tzero\troot\t_\tSpaceAfter=No") + 1
    assert (items[0].source, items[0].reason) == (f"{path}:{line}", "malformed")
    assert "HEAD column 'zero'" in items[0].detail


# --- skips ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "detail"), [(b"", "no text"), (b" \n\t\r\n  \n", "only whitespace")])
def test_empty_and_whitespace_only_files_are_skipped(tmp_path, content, detail):
    path = _write_bytes(tmp_path / "blank.txt", content)
    assert _one([path]) == SkippedInput(str(path), "empty", detail)


def test_conllu_with_a_bad_byte_is_an_encoding_skip(tmp_path):
    data = CONLLU.replace("Paris", "Pari\u00e9").encode("latin-1")
    path = _write_bytes(tmp_path / "latin.conllu", data)
    item = _one([path])
    assert isinstance(item, SkippedInput) and (item.source, item.reason) == (str(path), "encoding")
    offset = data.index(bytes([0xE9]))
    assert f"byte 0xE9 at byte offset {offset}" in item.detail


def test_empty_conllu_file_is_skipped(tmp_path):
    path = _write_bytes(tmp_path / "none.conllu", b"\n\n")
    assert _one([path]) == SkippedInput(str(path), "empty", "no sentences")


def test_binary_file_with_nul_bytes_is_skipped(tmp_path, caplog):
    path = _write_bytes(tmp_path / "image.txt", PNG_HEADER)
    with caplog.at_level(logging.WARNING, logger="qkgraph.sources"):
        item = _one([path])
    assert isinstance(item, SkippedInput) and item.reason == "binary"
    assert "NUL byte at offset 8" in item.detail
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()


def test_binary_file_with_many_control_characters_is_skipped(tmp_path):
    path = _write_bytes(tmp_path / "ctrl.jsonl", b"\x01\x02\x03\x1b abc" * 50)
    item = _one([path])
    assert isinstance(item, SkippedInput) and item.reason == "binary"
    assert "control characters" in item.detail


def test_few_control_characters_do_not_make_a_file_binary(tmp_path):
    text = "colour \x1b[31mred\x1b[0m text, then a lot of ordinary words after it." * 2
    path = _write_bytes(tmp_path / "ansi.txt", text.encode("utf-8"))
    # Read as text; the ESC characters (illegal in XML) become spaces, offsets unchanged.
    doc = _one([path])
    assert doc == Document("ansi.txt", text.replace("\x1b", " "), source=str(path))
    assert doc.replaced_chars == 4


def test_latin1_file_is_an_encoding_skip_naming_the_byte_offset(tmp_path, caplog):
    path = _write_bytes(tmp_path / "menu.txt", "Menu\nLe café est bon.\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="qkgraph.sources"):
        item = _one([path])
    assert isinstance(item, SkippedInput) and item.reason == "encoding"
    assert "byte 0xE9 at byte offset 11 (line 2)" in item.detail  # "Menu\n" + "Le caf" = 11 bytes
    assert "iconv -f LATIN1 -t UTF-8" in item.detail
    assert "menu.txt" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    "encoded",
    [
        "café\r\nnaïve 🏅\rend".encode("utf-16"),  # the codec writes a BOM
        codecs.BOM_UTF16_BE + "café\r\nnaïve 🏅\rend".encode("utf-16-be"),
        codecs.BOM_UTF16_LE + "café\r\nnaïve 🏅\rend".encode("utf-16-le"),
        codecs.BOM_UTF32_LE + "café\r\nnaïve 🏅\rend".encode("utf-32-le"),
    ],
)
def test_utf16_and_utf32_with_bom_are_decoded(tmp_path, encoded):
    path = _write_bytes(tmp_path / "wide.txt", encoded)
    assert _one([path]) == Document("wide.txt", "café\nnaïve 🏅\nend", source=str(path))


def test_utf16_jsonl_with_bom_is_decoded(tmp_path):
    text = json.dumps({"id": "w", "text": "wide"}) + "\r\n"
    path = _write_bytes(tmp_path / "wide.jsonl", text.encode("utf-16"))
    assert _one([path]) == Document("w", "wide", source=f"{path}:1")


def test_utf8_bom_is_stripped(tmp_path):
    path = _write_bytes(tmp_path / "bom.txt", codecs.BOM_UTF8 + "café".encode())
    assert _one([path]).text == "café"
    path = _write_bytes(tmp_path / "bom.conllu", codecs.BOM_UTF8 + CONLLU.encode("utf-8"))
    assert [d.id for d in load_documents([path])[0]] == ["news-1", "news-2"]


def test_crlf_and_lone_cr_are_normalised(tmp_path):
    path = _write_bytes(tmp_path / "dos.txt", b"one\r\ntwo\rthree\r\n\r\nfour")
    assert _one([path]).text == "one\ntwo\nthree\n\nfour"


def test_too_large_document_is_skipped_with_size_and_limit(tmp_path):
    path = _write_bytes(tmp_path / "big.txt", ("é" * 11).encode("utf-8"))  # 22 bytes: decoded, then counted
    item = _one([path], max_chars=10)
    assert item == SkippedInput(str(path), "too_large", "11 characters, limit 10")
    exact = _write_bytes(tmp_path / "exact.txt", ("é" * 10).encode("utf-8"))
    assert _one([exact], max_chars=10).text == "é" * 10


def test_file_far_over_the_limit_is_skipped_without_decoding(tmp_path):
    path = _write_bytes(tmp_path / "huge.txt", b"a" * 41)
    item = _one([path], max_chars=10)
    assert isinstance(item, SkippedInput) and item.reason == "too_large"
    assert "41 bytes" in item.detail and "10 characters" in item.detail


def test_too_large_conllu_document_names_it(tmp_path):
    path = _write_bytes(tmp_path / "news.conllu", CONLLU.encode("utf-8"))
    items = list(iter_documents([path], max_chars=20))
    assert [(type(i).__name__, getattr(i, "id", None)) for i in items] == [
        ("SkippedInput", None),
        ("Document", "news-2"),
    ]
    assert items[0].reason == "too_large" and items[0].detail == "document 'news-1': 33 characters, limit 20"


def test_nonexistent_path_raises_before_anything_is_yielded(tmp_path):
    good = _write_bytes(tmp_path / "good.txt", b"fine")
    missing = tmp_path / "nope" / "missing.txt"
    with pytest.raises(DocumentError, match=r"input path does not exist: .*missing\.txt"):
        iter_documents([good, missing])  # raised at call time, not on first iteration
    with pytest.raises(DocumentError):
        load_documents([good, missing])


# --- the real corpus -----------------------------------------------------------------------------


def test_ewt_dev_gives_318_documents_with_text(ewt_dev_path):
    docs, skipped = load_documents([ewt_dev_path])
    assert skipped == []
    assert len(docs) == 318
    assert len({d.id for d in docs}) == 318
    assert all(d.text.strip() and d.source == str(ewt_dev_path) for d in docs)
    expected = [(c.id, c.text) for c in read_conllu_documents(ewt_dev_path)]
    assert [(d.id, d.text) for d in docs] == expected
    assert docs[0].text.startswith("From the AP comes this story : President Bush on Tuesday nominated")
