"""A small, dependency-free CoNLL-U reader with character offsets into each sentence's text.

CoNLL-U (https://universaldependencies.org/format.html) stores one word per line in ten tab-separated
columns, sentences separated by blank lines, with ``# key = value`` comments before each sentence.
This reader keeps what the pipeline needs (ids, forms, lemmas, tags, heads, relations, MISC) and adds
what the format lacks: where each token sits in the sentence's ``# text``.

Line kinds inside a sentence:

* ``3`` (integer id): a syntactic word.
* ``3-4`` (range): a multiword token, the surface form that appears in the text (``don't``) and that
  is split into the words that follow (``do`` + ``n't``).
* ``5.1`` (decimal id): an empty node of the enhanced graph; it has no surface form and is skipped.

Offsets: the surface units of a sentence (multiword-token ranges, and words outside any range) are
searched in ``# text`` left to right. A word inside a multiword token gets the offsets of the whole
surface span, so both ``do`` and ``n't`` point at ``don't``; the text does not say where one word
ends and the next begins (``won't`` is split as ``wo`` + ``n't``), so no finer span is invented.
A surface form that cannot be found (an annotation quirk) gets a zero-length span at the end of the
previous token and is counted in ``ConlluSentence.n_unaligned``; reading never fails because of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import DocumentError

N_COLUMNS = 10
_UTF8_BOM = "\ufeff"

_WORD_ID = re.compile(r"^[1-9][0-9]*$")
_RANGE_ID = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]*)$")
_EMPTY_NODE_ID = re.compile(r"^[0-9]+\.[1-9][0-9]*$")
_HEAD = re.compile(r"^[0-9]+$")
# "# key = value" (value may be empty); "# newdoc" alone is also legal and handled separately.
_COMMENT_KV = re.compile(r"^#\s*([^=]*?)\s*=\s*(.*?)\s*$")
_NEWDOC_BARE = re.compile(r"^#\s*newdoc\s*$")


class ConlluFormatError(DocumentError):
    """A CoNLL-U line that breaks the format; ``path`` and ``line`` say where."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class ConlluToken:
    """One syntactic word.

    Attributes:
        id: 1-based index of the word in its sentence.
        form, lemma, upos, xpos: the FORM, LEMMA, UPOS and XPOS columns as written ("_" when unset).
        head: id of the governing word, 0 for the root.
        deprel: the relation to the head, subtype included (``nmod:poss``, ``aux:pass``...).
        misc: the MISC column as written (e.g. ``SpaceAfter=No``).
        start_char, end_char: offsets in the sentence's ``text``; for a word inside a multiword token,
            the offsets of the whole surface token; ``start_char == end_char`` when unaligned.
    """

    id: int
    form: str
    lemma: str
    upos: str
    xpos: str
    head: int
    deprel: str
    misc: str
    start_char: int
    end_char: int


@dataclass(frozen=True)
class ConlluSentence:
    """One sentence.

    Attributes:
        sent_id: the ``# sent_id`` comment, or ``<file stem>-s<N>`` (N = 1-based sentence number in
            the file) when it is missing.
        text: the ``# text`` comment; rebuilt from the surface forms and ``SpaceAfter=No`` when missing.
        tokens: the syntactic words (empty nodes left out).
        newdoc_id: set only on the first sentence of a document, from ``# newdoc id = ...`` (a bare
            ``# newdoc`` gets ``<file stem>-doc<N>``); None on every other sentence.
        n_unaligned: how many tokens could not be found in ``text`` (zero-length spans).
    """

    sent_id: str
    text: str
    tokens: list[ConlluToken]
    newdoc_id: str | None
    n_unaligned: int = 0


@dataclass(frozen=True)
class ConlluDocument:
    """The sentences of one ``# newdoc``; its text is the sentence texts joined by one space."""

    id: str
    sentences: list[ConlluSentence] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(sentence.text for sentence in self.sentences)

    def sentence_offsets(self) -> list[tuple[int, int]]:
        """(start, end) of each sentence in ``self.text``."""
        offsets: list[tuple[int, int]] = []
        start = 0
        for sentence in self.sentences:
            end = start + len(sentence.text)
            offsets.append((start, end))
            start = end + 1  # the joining space
        return offsets


# --- parsing -------------------------------------------------------------------------------------


@dataclass
class _Word:
    """A word line before alignment."""

    id: int
    columns: list[str]
    head: int


@dataclass
class _Range:
    """A multiword-token line: words ``first..last`` are written as ``form`` in the text."""

    first: int
    last: int
    form: str
    misc: str


@dataclass
class _Block:
    """The lines of one sentence as they are read."""

    first_line: int = 0
    comments: dict[str, str] = field(default_factory=dict)
    newdoc: bool = False
    words: list[_Word] = field(default_factory=list)
    ranges: list[_Range] = field(default_factory=list)

    @property
    def has_tokens(self) -> bool:
        return bool(self.words or self.ranges)


class _Parser:
    """Turns lines into sentences; keeps the counters that fallback names are made from."""

    def __init__(self, source: str, stem: str) -> None:
        self.source = source
        self.stem = stem
        self.n_sentences = 0
        self.n_newdocs = 0

    def error(self, line: int, problem: str) -> ConlluFormatError:
        return ConlluFormatError(self.source, line, problem)

    def add_comment(self, block: _Block, line_no: int, line: str) -> None:
        if block.has_tokens:
            raise self.error(line_no, "comment line among token lines (missing blank line before it?)")
        if _NEWDOC_BARE.match(line):
            block.newdoc = True
            return
        match = _COMMENT_KV.match(line)
        if match is None:
            return  # a free-form comment: nothing the pipeline needs
        key, value = match.group(1), match.group(2)
        block.comments[key] = value
        if key == "newdoc id":
            block.newdoc = True

    def add_token_line(self, block: _Block, line_no: int, line: str) -> None:
        columns = line.split("\t")
        if len(columns) != N_COLUMNS:
            raise self.error(line_no, f"expected {N_COLUMNS} tab-separated columns, found {len(columns)}")
        token_id = columns[0]
        if not block.has_tokens:
            block.first_line = line_no
        if _EMPTY_NODE_ID.match(token_id):
            return  # empty node: no surface form, not part of the basic tree
        range_match = _RANGE_ID.match(token_id)
        if range_match:
            first, last = int(range_match.group(1)), int(range_match.group(2))
            if last < first:
                raise self.error(line_no, f"multiword token range {token_id!r} ends before it starts")
            block.ranges.append(_Range(first, last, columns[1], columns[9]))
            return
        if not _WORD_ID.match(token_id):
            raise self.error(line_no, f"ID column {token_id!r} is not a word id, range or empty node")
        if not _HEAD.match(columns[6]):
            raise self.error(line_no, f"HEAD column {columns[6]!r} is not an integer")
        block.words.append(_Word(int(token_id), columns, int(columns[6])))

    def finish(self, block: _Block) -> ConlluSentence:
        self.n_sentences += 1
        newdoc_id: str | None = None
        if block.newdoc:
            self.n_newdocs += 1
            newdoc_id = block.comments.get("newdoc id") or f"{self.stem}-doc{self.n_newdocs}"
        units = _surface_units(block)
        text = block.comments.get("text")
        if text is None:
            text = _rebuild_text(units)
        tokens, n_unaligned = _align(units, text)
        sent_id = block.comments.get("sent_id") or f"{self.stem}-s{self.n_sentences}"
        return ConlluSentence(sent_id, text, tokens, newdoc_id, n_unaligned)


@dataclass
class _Unit:
    """One piece of surface text: a multiword token or a word outside any range."""

    form: str
    misc: str
    words: list[_Word]


def _surface_units(block: _Block) -> list[_Unit]:
    """Group words under the multiword tokens that cover them, in text order."""
    range_by_first = {r.first: r for r in block.ranges}
    units: list[_Unit] = []
    covered_until = 0
    current: _Unit | None = None
    for word in block.words:
        if word.id in range_by_first:
            span = range_by_first[word.id]
            current = _Unit(span.form, span.misc, [])
            units.append(current)
            covered_until = span.last
        if current is not None and word.id <= covered_until:
            current.words.append(word)
        else:
            current = None
            units.append(_Unit(word.columns[1], word.columns[9], [word]))
    return units


def _rebuild_text(units: list[_Unit]) -> str:
    """The sentence text implied by the surface forms and ``SpaceAfter=No`` (when ``# text`` is missing)."""
    parts: list[str] = []
    for unit in units:
        parts.append(unit.form)
        if "SpaceAfter=No" not in unit.misc.split("|"):
            parts.append(" ")
    return "".join(parts).rstrip(" ")


def _align(units: list[_Unit], text: str) -> tuple[list[ConlluToken], int]:
    """Locate each unit in ``text`` left to right; return the tokens and how many were not found."""
    tokens: list[ConlluToken] = []
    cursor = 0
    n_unaligned = 0
    for unit in units:
        start = text.find(unit.form, cursor) if unit.form else -1
        if start < 0:
            # Not in the text (annotation quirk): an empty span where the token would have been.
            start = end = cursor
            n_unaligned += len(unit.words)
        else:
            end = start + len(unit.form)
            cursor = end
        tokens.extend(_token(word, start, end) for word in unit.words)
    return tokens, n_unaligned


def _token(word: _Word, start: int, end: int) -> ConlluToken:
    c = word.columns
    return ConlluToken(
        id=word.id,
        form=c[1],
        lemma=c[2],
        upos=c[3],
        xpos=c[4],
        head=word.head,
        deprel=c[7],
        misc=c[9],
        start_char=start,
        end_char=end,
    )


def parse_conllu(lines: Iterable[str], source: str = "<conllu>", stem: str | None = None) -> Iterator[ConlluSentence]:
    """Parse CoNLL-U lines (with or without line endings) into sentences, one at a time.

    Args:
        lines: the text lines; a UTF-8 byte-order mark at the start of the first is ignored.
        source: the name used in error messages (usually the file path).
        stem: the base for fallback sentence and document ids; defaults to ``source``.

    Raises:
        ConlluFormatError (a DocumentError): a token line without 10 tab-separated columns, an ID that
            is not ``N``, ``N-M`` or ``N.M``, or a word whose HEAD is not an integer.
    """
    parser = _Parser(source, stem if stem is not None else source)
    block = _Block()
    line_no = 0
    for line_no, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if line_no == 1 and line.startswith(_UTF8_BOM):
            line = line[1:]
        if not line.strip():
            if block.has_tokens:
                yield parser.finish(block)
                block = _Block()
            # A comment-only block (e.g. a lone "# newdoc id") carries over to the next sentence.
        elif line.startswith("#"):
            parser.add_comment(block, line_no, line)
        else:
            parser.add_token_line(block, line_no, line)
    if block.has_tokens:
        yield parser.finish(block)


def _utf8_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file, read as bytes so a bad byte can be reported with its line and offset."""
    offset = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConlluFormatError(
                    str(path),
                    line_no,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02X} at file offset {offset + exc.start}); "
                    f"convert it, e.g. iconv -f LATIN1 -t UTF-8",
                ) from None
            offset += len(raw)


def read_conllu(path: str | Path) -> Iterator[ConlluSentence]:
    """Stream the sentences of a UTF-8 CoNLL-U file.

    Raises:
        ConlluFormatError (a DocumentError): a malformed line or invalid UTF-8, naming file and line.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    yield from parse_conllu(_utf8_lines(path), source=str(path), stem=path.stem)


def group_documents(sentences: Iterable[ConlluSentence], default_id: str) -> Iterator[ConlluDocument]:
    """Group sentences into documents at each ``newdoc_id``.

    Sentences before the first ``# newdoc`` (all of them, in a file without any) form a document
    called ``default_id``. A document is yielded once the next one starts or the input ends.
    """
    current: ConlluDocument | None = None
    for sentence in sentences:
        if sentence.newdoc_id is not None or current is None:
            if current is not None:
                yield current
            current = ConlluDocument(sentence.newdoc_id if sentence.newdoc_id is not None else default_id)
        current.sentences.append(sentence)
    if current is not None:
        yield current


def read_conllu_documents(path: str | Path) -> Iterator[ConlluDocument]:
    """Stream the documents of a CoNLL-U file (see ``group_documents``; the default id is the file stem)."""
    path = Path(path)
    yield from group_documents(read_conllu(path), default_id=path.stem)
