"""Read documents from files and folders: .txt, .md, .jsonl and .conllu.

Every input either becomes a ``Document`` or a ``SkippedInput`` with a reason; nothing is dropped
silently except the housekeeping files listed under ``iter_documents``. Each skip is also logged as a
warning on the ``qkgraph.sources`` logger.

Text handling:

* Encoding: UTF-8, with a UTF-8 byte-order mark stripped. A UTF-16 or UTF-32 byte-order mark selects
  that encoding. Anything that is not valid UTF-8 is skipped with reason ``encoding`` and the byte
  offset of the first bad byte; it is never decoded as latin-1 behind the user's back, because a
  wrong guess silently corrupts every non-ASCII character (and so every entity that contains one).
  Converting the file (``iconv -f LATIN1 -t UTF-8``) is a one-line fix that the user controls.
* Binary: a NUL byte in the first 8 KiB, or more than 10% control characters there, means binary.
  UTF-16/32 text without a byte-order mark is full of NULs and is therefore reported as binary.
* Line endings are normalised to ``"\\n"`` (CRLF and lone CR); every other character is kept exactly,
  because later steps store character offsets into this text, with one exception:
* XML-illegal code points (C0 controls other than tab, newline and carriage return, such as NUL, the
  ESC of ANSI colour codes, vertical tab and form feed; lone surrogates; U+FFFE and U+FFFF) are replaced,
  each by exactly one character, so every offset stays valid: a control by a space, the others by
  U+FFFD. Left in, they reach node texts and ids and make the GraphML export unreadable ("not
  well-formed"). ``Document.replaced_chars`` counts them per document. Ids get the same treatment.
* Size: a document over ``MAX_DOCUMENT_CHARS`` (1,000,000, spaCy's own limit) is skipped as
  ``too_large`` before it reaches spaCy. This module is the one place that limit is set.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import posixpath
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import DocumentError
from pipeline.text.conllu import ConlluFormatError, group_documents, parse_conllu
from pipeline.types import Document, SkippedInput

logger = logging.getLogger("qkgraph.sources")

MAX_ID_CHARS = 1_000
"""Longer document ids (a JSONL ``id`` field, say) are refused: an id is a key Neo4j indexes (about 8 KB at
most), and no real identifier is that long."""

MAX_DOCUMENT_CHARS = 1_000_000
"""Longest document text read, in characters; longer ones are skipped as too_large.

spaCy's default ``nlp.max_length``: its parser and NER need about 1 GB of memory per 100,000 characters,
and above this limit spaCy refuses the text (E088) and would abort the run.
"""
SUPPORTED_SUFFIXES = (".txt", ".md", ".jsonl", ".conllu")
# Housekeeping files inside folders, ignored without a SkippedInput (case-insensitive prefixes).
IGNORED_PREFIXES = ("readme", "license", "notice")

_SNIFF_BYTES = 8192
_MAX_CONTROL_SHARE = 0.10
# Code points outside XML 1.0's Char production (tab, newline and CR are the only legal C0 controls).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Control characters that are ordinary in text: tab, newline, vertical tab, form feed, carriage return.
_TEXT_CONTROLS = frozenset("\t\n\v\f\r")
# A UTF-8 character is at most 4 bytes, so a file larger than 4 * max_chars bytes is surely too large
# (UTF-16/32 characters take at least 2 or 4 bytes, so the bound holds for them as well).
_MAX_BYTES_PER_CHAR = 4
# Longest first: the UTF-32 little-endian mark begins with the UTF-16 little-endian one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


# --- public API ----------------------------------------------------------------------------------


def iter_documents(
    paths: Sequence[str | Path] | str | Path, max_chars: int = MAX_DOCUMENT_CHARS
) -> Iterator[Document | SkippedInput]:
    """Yield the documents in ``paths`` (files and folders), and a SkippedInput for each input left out.

    Order is deterministic: paths in the order given; folders walked recursively, entries of each
    folder sorted by name (a subfolder's files come where its name sorts).

    Formats, by suffix (case-insensitive):

    * ``.txt``, ``.md``: one document per file; id = path relative to the folder given, with forward
      slashes, or the file name for a file given directly. With several paths given, each file id is
      prefixed by its root's name (``a/x.txt`` and ``b/x.txt`` for ``a/`` and ``b/``; a file given
      directly keeps its name); roots that share a name use the path as given instead of the name.
      So one root keeps the ids it always had, and the same files named the same way keep their ids
      from run to run.
    * ``.jsonl``: one document per non-blank line, an object with string ``id`` and ``text``; its other
      string fields go to ``meta``. A bad line (not JSON, no id/text) is skipped as ``malformed`` with
      source ``path:LINE``; the other lines still count.
    * ``.conllu``: one document per ``# newdoc id``, id = that id, text = sentence texts joined by a
      space (see ``pipeline.conllu``). A malformed line skips the whole file as ``malformed`` (source
      ``path:LINE``).

    Ids are unique in what is yielded: a document whose id was already taken by a document read
    earlier in the same call (a JSONL or CoNLL-U id is the user's choice, so it can repeat within a
    file, across files, or equal a file's id) is skipped as ``duplicate_id``, naming both sources.
    The first one read keeps the id; nothing is ever overwritten.

    Inside folders, other suffixes give SkippedInput(reason="unsupported"), while hidden files and
    folders (name starting with "."), files named README*, LICENSE* or NOTICE* (any case), and entries
    that are neither regular files nor folders (sockets, pipes, broken links) are ignored quietly.
    A file given explicitly is always considered, whatever its name.

    Skips: ``empty`` (no non-whitespace text), ``binary``, ``encoding`` (not UTF-8), ``too_large``
    (more than ``max_chars`` characters; spaCy refuses longer texts), ``malformed``, ``unsupported``,
    ``duplicate_id``, and ``error`` (the file could not be read, e.g. permissions).

    Raises:
        DocumentError: at call time, before anything is read, if a given path does not exist or is
            neither a file nor a folder.
    """
    roots = _checked_roots(paths)
    return _iter_roots(roots, max_chars)


def load_documents(
    paths: Sequence[str | Path] | str | Path, max_chars: int = MAX_DOCUMENT_CHARS
) -> tuple[list[Document], list[SkippedInput]]:
    """All of ``iter_documents`` at once: (documents, skipped inputs), each in order."""
    documents: list[Document] = []
    skipped: list[SkippedInput] = []
    for item in iter_documents(paths, max_chars=max_chars):
        if isinstance(item, Document):
            documents.append(item)
        else:
            skipped.append(item)
    return documents, skipped


# --- walking -------------------------------------------------------------------------------------


def _checked_roots(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    """The given paths as Paths, after checking that every one exists (a single path is accepted too)."""
    if isinstance(paths, (str, os.PathLike)):
        # A bare string would otherwise be iterated character by character.
        paths = [paths]
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise DocumentError(f"input path does not exist: {root}")
        if not (root.is_file() or root.is_dir()):
            raise DocumentError(f"input path is neither a file nor a folder: {root}")
    return roots


def _iter_roots(roots: list[Path], max_chars: int) -> Iterator[Document | SkippedInput]:
    taken: dict[str, str] = {}  # document id -> source of the document that has it
    for root, label in zip(roots, _root_labels(roots), strict=True):
        if root.is_dir():
            for file in _walk(root, visited=set()):
                relative = file.relative_to(root).as_posix()
                doc_id = relative if label is None else posixpath.join(label, relative)
                yield from _logged(_unique(_read_file(file, doc_id, max_chars, in_folder=True), taken))
        else:
            doc_id = root.name if label is None else label
            yield from _logged(_unique(_read_file(root, doc_id, max_chars, in_folder=False), taken))


def _root_labels(roots: list[Path]) -> list[str | None]:
    """The id prefix of each root's files: None for a single root, else its name, or its path if shared.

    The name is that of the absolute path, so ``.`` is named after the current folder.
    """
    if len(roots) == 1:
        return [None]
    names = [Path(os.path.abspath(root)).name for root in roots]
    counts = Counter(names)
    return [name if name and counts[name] == 1 else root.as_posix() for root, name in zip(roots, names, strict=True)]


def _unique(items: Iterator[Document | SkippedInput], taken: dict[str, str]) -> Iterator[Document | SkippedInput]:
    """Pass items through; a document whose id is already in ``taken`` becomes a duplicate_id skip, one
    whose id is longer than ``MAX_ID_CHARS`` a malformed one."""
    for item in items:
        if isinstance(item, Document):
            if len(item.id) > MAX_ID_CHARS:
                detail = f"document id of {len(item.id):,} characters (at most {MAX_ID_CHARS:,}): {item.id[:60]!r}..."
                yield SkippedInput(item.source, "malformed", detail)
                continue
            first = taken.get(item.id)
            if first is not None:
                detail = f"document id {item.id!r} is already taken by the document from {first}, which is kept"
                yield SkippedInput(item.source, "duplicate_id", detail)
                continue
            taken[item.id] = item.source
        yield item


def _walk(folder: Path, visited: set[Path]) -> Iterator[Path]:
    """Files under ``folder``, depth first, each folder's entries sorted by name, hidden ones left out."""
    real = folder.resolve()
    if real in visited:
        return  # a symlink loop back into a folder already being walked
    visited.add(real)
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, visited)
        elif entry.is_file() and not entry.name.lower().startswith(IGNORED_PREFIXES):
            yield entry


def _logged(items: Iterator[Document | SkippedInput]) -> Iterator[Document | SkippedInput]:
    """Pass items through, logging each SkippedInput."""
    for item in items:
        if isinstance(item, SkippedInput):
            detail = f": {item.detail}" if item.detail else ""
            logger.warning("skipped %s (%s)%s", item.source, item.reason, detail)
        yield item


def _read_file(path: Path, doc_id: str, max_chars: int, in_folder: bool) -> Iterator[Document | SkippedInput]:
    """Dispatch on the suffix; turn read failures into SkippedInput(reason="error")."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        where = "in a folder" if in_folder else "given"
        yield SkippedInput(
            str(path),
            "unsupported",
            f"file {where} with suffix {suffix or '(none)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}",
        )
        return
    try:
        if suffix == ".jsonl":
            yield from _read_jsonl(path, max_chars)
        elif suffix == ".conllu":
            yield from _read_conllu(path, max_chars)
        else:
            yield from _read_plain(path, doc_id, max_chars)
    except OSError as exc:
        yield SkippedInput(str(path), "error", f"cannot read: {exc}")


# --- bytes to text -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One decoded line; ``text`` is None when it could not be decoded (``problem`` says why)."""

    number: int
    text: str | None
    problem: str = ""


def _sniff(path: Path) -> tuple[str, str]:
    """(encoding, why-binary) from the first bytes; why-binary is "" for text."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
    if encoding == "utf-8":
        # In UTF-8, bytes below 0x20 only ever encode ASCII control characters: count bytes directly.
        nul = head.find(b"\x00")
        if nul >= 0:
            return encoding, f"NUL byte at offset {nul} (binary data, or UTF-16/32 without a byte-order mark)"
        sample = head.decode("latin-1")  # one char per byte, only to classify them
    else:
        sample = head.decode(encoding, errors="ignore")  # the head may end mid-character
        if "\x00" in sample:
            return encoding, f"NUL character in the first {_SNIFF_BYTES} bytes"
    if sample:
        controls = sum(1 for ch in sample if (ch < " " or ch == "\x7f") and ch not in _TEXT_CONTROLS)
        if controls / len(sample) > _MAX_CONTROL_SHARE:
            return encoding, f"{controls} control characters in the first {len(sample)} characters"
    return encoding, ""


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _iconv_hint(path: Path) -> str:
    return f"convert the file to UTF-8, e.g. iconv -f LATIN1 -t UTF-8 '{path}' > '{path}.utf8' (or -f CP1252)"


def _lines(path: Path, encoding: str) -> Iterator[_Line]:
    """Decoded lines with normalised line endings; UTF-8 bad bytes are reported per line and offset."""
    if encoding != "utf-8":
        yield from _wide_lines(path, encoding)
        return
    offset = 0
    with path.open("rb") as handle:
        # Splitting bytes on b"\n" is safe in UTF-8: 0x0A never occurs inside a multibyte character.
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                problem = (
                    f"not valid UTF-8: byte 0x{raw[exc.start]:02X} at byte offset {bad} (line {number}); "
                    + _iconv_hint(path)
                )
                yield _Line(number, None, problem)
            else:
                if number == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                yield _Line(number, _normalise_newlines(text))
            offset += len(raw)


def _wide_lines(path: Path, encoding: str) -> Iterator[_Line]:
    """Lines of a UTF-16/32 file (byte-order mark consumed by the codec); stops at the first bad data."""
    number = 0
    try:
        # newline=None: universal newlines, so CRLF and CR arrive as "\n".
        with path.open("r", encoding=encoding, newline=None) as handle:
            for number, text in enumerate(handle, start=1):
                yield _Line(number, text)
    except UnicodeDecodeError as exc:
        yield _Line(number + 1, None, f"invalid {encoding.upper()} data after line {number}: {exc.reason}")


def _precheck(path: Path, max_chars: int) -> tuple[str, SkippedInput | None]:
    """(encoding, skip) from the cheap checks made before decoding: binary content, size in bytes."""
    encoding, why_binary = _sniff(path)
    if why_binary:
        return encoding, SkippedInput(str(path), "binary", why_binary)
    size = path.stat().st_size
    if size > _MAX_BYTES_PER_CHAR * max_chars:
        detail = f"{size} bytes, surely more than the limit of {max_chars} characters"
        return encoding, SkippedInput(str(path), "too_large", detail)
    return encoding, None


def _size_skip(source: str, text: str, max_chars: int) -> SkippedInput | None:
    if len(text) > max_chars:
        return SkippedInput(source, "too_large", f"{len(text)} characters, limit {max_chars}")
    return None


def _text_skip(source: str, text: str, max_chars: int) -> SkippedInput | None:
    """The skip for a decoded document text (empty or too large), or None when it is fine."""
    # Judged as loaded: a text of NULs or escape codes only is blank once they are replaced.
    if not xml_safe(text)[0].strip():
        return SkippedInput(source, "empty", "no text" if not text else "only whitespace")
    return _size_skip(source, text, max_chars)


def xml_safe(text: str) -> tuple[str, int]:
    """``text`` with each XML-1.0-illegal code point replaced by one character, and how many were.

    A C0 control (other than tab, newline, carriage return) becomes a space, a lone surrogate or
    U+FFFE/U+FFFF becomes U+FFFD; the length in code points, and so every offset, is unchanged.
    """
    if _XML_ILLEGAL.search(text) is None:  # the usual case: no copy
        return text, 0
    return _XML_ILLEGAL.subn(lambda m: " " if m.group() < " " else "\ufffd", text)


def _document(doc_id: str, text: str, source: str, meta: dict[str, str] | None = None) -> Document:
    """A Document with id, text and meta values made XML-safe, counting the text's replacements."""
    clean, replaced = xml_safe(text)
    clean_meta = {key: xml_safe(value)[0] for key, value in (meta or {}).items()}
    return Document(xml_safe(doc_id)[0], clean, source=source, meta=clean_meta, replaced_chars=replaced)


# --- formats -------------------------------------------------------------------------------------


def _read_plain(path: Path, doc_id: str, max_chars: int) -> Iterator[Document | SkippedInput]:
    """A .txt or .md file: one document."""
    source = str(path)
    encoding, skip = _precheck(path, max_chars)
    if skip is not None:
        yield skip
        return
    parts: list[str] = []
    for line in _lines(path, encoding):
        if line.text is None:
            yield SkippedInput(source, "encoding", line.problem)
            return
        parts.append(line.text)
    text = "".join(parts)
    skip = _text_skip(source, text, max_chars)
    yield skip if skip is not None else _document(doc_id, text, source)


def _read_jsonl(path: Path, max_chars: int) -> Iterator[Document | SkippedInput]:
    """A .jsonl file: one document per non-blank line; bad lines are skipped one by one."""
    encoding, why_binary = _sniff(path)
    if why_binary:
        yield SkippedInput(str(path), "binary", why_binary)
        return
    for line in _lines(path, encoding):
        source = f"{path}:{line.number}"
        if line.text is None:
            yield SkippedInput(source, "encoding", line.problem)
        elif line.text.strip():
            yield _jsonl_record(source, line.text, max_chars)


def _jsonl_record(source: str, raw: str, max_chars: int) -> Document | SkippedInput:
    """One JSONL line as a Document, or why not (a repeated id is left to ``_unique``)."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        return SkippedInput(source, "malformed", f"not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(record, dict):
        return SkippedInput(source, "malformed", f"expected a JSON object, found {type(record).__name__}")
    doc_id, text = record.get("id"), record.get("text")
    if not isinstance(doc_id, str) or not doc_id:
        return SkippedInput(source, "malformed", "missing or non-string (or empty) 'id' field")
    if not isinstance(text, str):
        return SkippedInput(source, "malformed", f"missing or non-string 'text' field (id {doc_id!r})")
    text = _normalise_newlines(text)
    skip = _text_skip(source, text, max_chars)
    if skip is not None:
        return skip
    meta = {k: v for k, v in record.items() if k not in ("id", "text") and isinstance(v, str)}
    return _document(doc_id, text, source, meta)


class _UndecodableLine(Exception):
    """Raised inside a line stream to stop parsing at a line that could not be decoded."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _decoded_texts(path: Path, encoding: str) -> Iterator[str]:
    """The line texts of a file, raising _UndecodableLine at the first one that cannot be decoded."""
    for line in _lines(path, encoding):
        if line.text is None:
            raise _UndecodableLine(line.problem)
        yield line.text


def _read_conllu(path: Path, max_chars: int) -> Iterator[Document | SkippedInput]:
    """A .conllu file: one document per ``# newdoc``.

    The file is read whole before anything is yielded (keeping only each document's id and text, not
    its tokens), so a malformed line or a bad byte skips the file as a whole instead of leaving a
    partial set of documents whose cut-off point depends on where the damage happens to be.
    """
    source = str(path)
    encoding, why_binary = _sniff(path)
    if why_binary:
        yield SkippedInput(source, "binary", why_binary)
        return
    sentences = parse_conllu(_decoded_texts(path, encoding), source, stem=path.stem)
    try:
        documents = [(doc.id, doc.text) for doc in group_documents(sentences, default_id=path.stem)]
    except _UndecodableLine as exc:
        yield SkippedInput(source, "encoding", exc.problem)
        return
    except ConlluFormatError as exc:
        detail = f"{exc.problem}; no document of this file was read"
        yield SkippedInput(f"{path}:{exc.line}", "malformed", detail)
        return
    if not documents:
        yield SkippedInput(source, "empty", "no sentences")
        return
    for doc_id, text in documents:
        yield _conllu_document(source, doc_id, text, max_chars)


def _conllu_document(source: str, doc_id: str, text: str, max_chars: int) -> Document | SkippedInput:
    """One CoNLL-U document as a Document, or why not (too large; a repeated id is left to ``_unique``)."""
    skip = _text_skip(source, text, max_chars)
    if skip is not None:
        return SkippedInput(skip.source, skip.reason, f"document {doc_id!r}: {skip.detail}")
    return _document(doc_id, text, source)
