"""Readers for paper files: JSON lines (optionally gzipped), JSON arrays/objects and Parquet.

A file is opened once (a pipe is read once) and its format decided once: by the name (``.jsonl``,
``.ndjson``, ``.json``, ``.parquet``, with or without ``.gz``), else by the content. Every reader
yields ``(line, raw_record)`` pairs so that errors can name the record; a record that cannot be
parsed is yielded as an :class:`InvalidRecordError` in its place (errors stay confined to their
line or array element), and damage that ends the file (truncated gzip, an unterminated array,
content after the JSON document) raises :class:`InputFileError`. ``iter_parsed`` is the one
skip-and-report loop that every reader of sciembed (papers, triplets, mining, training) uses.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from .errors import InputFileError, InvalidRecordError
from .records import Paper, paper_from_dict

MAX_REPORTED_LOCATIONS = 20
SNIFF_BYTES = 1 << 16
SNIFF_LINES = 5
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
#: What a damaged gzip stream raises while it is read.
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
T = TypeVar("T")


@dataclass
class ReadReport:
    """What a read did: how many papers it yielded, which records it skipped and why."""

    papers: int = 0
    duplicates: int = 0
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def add_skip(self, error: InvalidRecordError) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < MAX_REPORTED_LOCATIONS:
            self.skipped_examples.append(str(error))

    def summary(self) -> str:
        text = f"{self.papers} papers read"
        if self.duplicates:
            text += f", {self.duplicates} exact duplicates dropped"
        if self.skipped:
            text += f", {self.skipped} invalid records skipped:\n  " + "\n  ".join(self.skipped_examples)
            if self.skipped > len(self.skipped_examples):
                text += f"\n  ... and {self.skipped - len(self.skipped_examples)} more"
        return text


# ---- opening a file once ----------------------------------------------------------------------------
class _Replay(io.RawIOBase):
    """``head`` (bytes already read to decide the format) followed by the rest of ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]):
        self._head, self._pos, self._rest = head, 0, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._pos < len(self._head):
            n = min(len(buffer), len(self._head) - self._pos)
            buffer[:n] = self._head[self._pos : self._pos + n]
            self._pos += n
            return n
        return self._rest.readinto(buffer)

    def close(self) -> None:
        self._rest.close()
        super().close()


def _read_head(stream: IO[bytes], size: int) -> bytes:
    chunks, total = [], 0
    while total < size:
        chunk = stream.read(size - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _format_from_name(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    last = suffixes[-1] if suffixes else ""
    if last in PARQUET_SUFFIXES:
        return "parquet"
    if last in JSONL_SUFFIXES:
        return "jsonl"
    if last in JSON_SUFFIXES:
        return "json"
    return None


def _format_from_content(head: bytes) -> str:
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    text = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if text.startswith(b"["):
        return "json"
    if not text.startswith(b"{"):
        return "jsonl"  # every line will say what is wrong with it
    # One record per line, or one object mapping ids to records (SPECTER's metadata.json)? JSON
    # lines when any of the first complete lines is a JSON object on its own (a broken first line
    # must not turn a JSON-lines file into one broken document).
    lines = [line for line in text.split(b"\n")[:-1] if line.strip()][:SNIFF_LINES]
    for line in lines:
        try:
            if isinstance(json.loads(line), dict):
                return "jsonl"
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return "json" if lines or len(text) < SNIFF_BYTES // 2 else "jsonl"


def check_input_path(path: str | Path) -> Path:
    """``path`` as a Path; a clear error when it does not exist or is a directory."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(str(path), None, "is a directory, not a file")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return path


@contextmanager
def open_input(path: str | Path) -> Iterator[tuple[str, IO[bytes]]]:
    """``(format, binary stream of the decompressed content)``: the file is opened and read once."""
    path = check_input_path(path)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise InputFileError(str(path), None, f"cannot be read ({exc.strerror or exc})") from None
    try:
        magic = _read_head(raw, 2)
        stream: IO[bytes] = io.BufferedReader(_Replay(magic, raw))
        if magic == GZIP_MAGIC:
            stream = io.BufferedReader(_Inflated(stream), buffer_size=INFLATE_INPUT_BYTES)
        fmt = _format_from_name(path)
        if fmt is None:
            try:
                head = _read_head(stream, SNIFF_BYTES)
            except GZIP_ERRORS as exc:
                raise InputFileError(str(path), 1, f"truncated or corrupt gzip data ({exc})") from None
            fmt = _format_from_content(head)
            stream = io.BufferedReader(_Replay(head, stream))
        yield fmt, stream
    finally:
        raw.close()


def detect_format(path: str | Path) -> str:
    """``parquet``, ``json`` (one array or object) or ``jsonl``, from the name, else the content."""
    with open_input(path) as (fmt, _):
        return fmt


# ---- the three formats ------------------------------------------------------------------------------
def _iter_jsonl(path: Path, stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    line_no = 0
    lines = iter(stream)
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            return
        except GZIP_ERRORS as exc:
            raise InputFileError(str(path), line_no + 1, f"truncated or corrupt gzip data ({exc})") from None
        line_no += 1
        record = jsonl_record(str(path), line_no, raw)
        if record is not BLANK:
            yield line_no, record


#: What :func:`jsonl_record` gives for a blank line.
BLANK = object()


def jsonl_record(path: str, line_no: int, raw: bytes) -> Any:
    """The record of one line of a JSON-lines file: its value, :data:`BLANK`, or an
    :class:`InvalidRecordError` naming the line (invalid UTF-8 or JSON)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidRecordError(path, line_no, f"invalid UTF-8 ({exc.reason})")
    if not text.strip():
        return BLANK
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return InvalidRecordError(path, line_no, f"invalid JSON ({exc.msg})")


_STRUCTURE = re.compile(r'["\[\]{},]')
_STRING_REST = re.compile(r'(?:[^"\\\n]|\\.)*(?:"|\n|$)')  # a broken string ends at its line


def _element_end(text: str, pos: int) -> int:
    """Where the array/object element starting at ``pos`` ends: its ``,`` or the closing bracket; -1: never."""
    depth = 0
    while True:
        match = _STRUCTURE.search(text, pos)
        if match is None:
            return -1
        char, pos = match.group(), match.end()
        if char == '"':
            pos = _STRING_REST.match(text, pos).end()
        elif char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return match.start()
            depth -= 1
        elif depth == 0:
            return match.start()


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _iter_json_document(path: Path, stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """A JSON array of records (SciRepEval samples), or an object mapping ids to records.

    A bad element is yielded as an error in its place and the next elements are still read; content
    after the document's end, or a document that never ends, is an :class:`InputFileError`.
    """
    try:
        raw = stream.read()
    except GZIP_ERRORS as exc:
        raise InputFileError(str(path), None, f"truncated or corrupt gzip data ({exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(str(path), line, f"invalid UTF-8 ({exc.reason})") from None
    decoder = json.JSONDecoder()
    counted, line = 0, 1

    def line_at(pos: int) -> int:
        nonlocal counted, line
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    pos = _skip_ws(text, 0)
    opening = text[pos : pos + 1]
    if opening not in ("[", "{"):
        raise InputFileError(str(path), line_at(pos), "expected a JSON array or object")
    closing = "]" if opening == "[" else "}"
    pos = _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] != closing:
        start = line_at(pos)
        try:
            key = None
            if opening == "{":
                key, pos = decoder.raw_decode(text, pos)
                pos = _skip_ws(text, pos)
                if text[pos : pos + 1] != ":":
                    raise json.JSONDecodeError("expected ':'", text, pos)
                pos = _skip_ws(text, pos + 1)
            value, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if text[pos : pos + 1] not in (",", closing):
                raise json.JSONDecodeError(f"expected ',' or {closing!r}", text, pos)
        except json.JSONDecodeError as exc:
            pos = _element_end(text, pos)
            if pos < 0:
                raise InputFileError(str(path), start, f"invalid JSON ({exc.msg}); the document never ends") from None
            yield start, InvalidRecordError(str(path), start, f"invalid JSON ({exc.msg})")
        else:
            if key is not None and isinstance(value, dict) and "paper_id" not in value:
                value = {"paper_id": key, **value}
            yield start, value
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    if pos >= len(text):
        raise InputFileError(str(path), line_at(pos), f"invalid JSON (the document ends without {closing!r})")
    rest = _skip_ws(text, pos + 1)
    if rest < len(text):
        raise InputFileError(str(path), line_at(rest), "content after the end of the JSON document")


def _iter_parquet(path: Path, stream: IO[bytes], batch_rows: int = 8192) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # A regular file is read in place; a pipe or a gzip stream (not seekable) into memory once.
        regular = path.is_file() and not isinstance(getattr(stream, "raw", stream), _Inflated)
        parquet = pq.ParquetFile(str(path) if regular else pa.BufferReader(stream.read()))
    except (pa.ArrowException, OSError, *GZIP_ERRORS) as exc:
        raise InputFileError(str(path), None, f"not a readable Parquet file ({exc})") from None
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            for record in batch.to_pylist():
                row += 1
                yield row, record
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(str(path), row + 1, f"damaged Parquet data ({exc})") from None


_FORMAT_READERS = {"parquet": _iter_parquet, "json": _iter_json_document, "jsonl": _iter_jsonl}


def iter_raw_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line or row number, record)`` pairs; a record may be an :class:`InvalidRecordError`."""
    path = check_input_path(path)

    def records() -> Iterator[tuple[int, Any]]:
        with open_input(path) as (fmt, stream):
            yield from _FORMAT_READERS[fmt](path, stream)

    return records()


def has_at_least(path: str | Path, count: int, chunk_bytes: int = 1 << 22, margin: float = 4.0) -> bool:
    """Whether the file holds at least ``count`` records, for decisions that only change speed (such as
    compiling the model for a large job): a Parquet file's row count, a JSON-lines file's lines
    (blank lines count), False for one JSON document. Lines are counted until ``count``, except
    where the first ``chunk_bytes`` of the file (compressed) put the whole file's estimate beyond
    ``margin`` times ``count`` either way: a 75,000-paper gzip file is then not read to its end to
    learn that it holds fewer than 2M papers. The same file always gets the same answer."""
    with open_input(check_input_path(path)) as (fmt, _):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                return pq.ParquetFile(str(path)).metadata.num_rows >= count
            except (OSError, ValueError):  # compressed or damaged: the reader itself will say what is wrong
                return False
        if fmt != "jsonl":
            return False
    size = Path(path).stat().st_size
    lines, first_read, estimated = 0, None, False
    try:
        for read, block in _content_blocks(Path(path), chunk_bytes):
            first_read = read if first_read is None else first_read
            if not estimated and read > first_read:  # the first block's lines are counted: estimate once
                estimated = True
                estimate = lines * size / first_read
                if lines >= ESTIMATE_MIN_LINES and estimate * margin < count:
                    return False
                if lines >= ESTIMATE_MIN_LINES and estimate > count * margin:
                    return True
            lines += block.count(b"\n")
            if lines >= count:
                return True
    except (*GZIP_ERRORS, OSError):
        return False
    return False


# The fewest lines of the first block from which ``has_at_least`` estimates the whole file.
ESTIMATE_MIN_LINES = 1000
# The most bytes one inflate step may produce (a highly compressed block stays bounded in memory).
_MAX_INFLATE = 1 << 26
# Compressed bytes inflated per zlib call when a gzip input is read.
INFLATE_INPUT_BYTES = 1 << 20


def _content_blocks(path: Path, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """``(bytes of the file read so far, block)``: the file's content (decompressed if gzip, every
    member) in blocks of about ``chunk_bytes`` of input (:func:`_inflate`)."""
    with open(path, "rb") as raw:
        data = raw.read(chunk_bytes)
        if data.startswith(GZIP_MAGIC):
            yield from _inflate(raw, chunk_bytes, data)
            return
        read = len(data)
        while data:
            yield read, data
            data = raw.read(chunk_bytes)
            read += len(data)


def _inflate(
    compressed: IO[bytes], chunk_bytes: int, first: bytes = b"", max_out: int = _MAX_INFLATE
) -> Iterator[tuple[int, bytes]]:
    """``(compressed bytes read so far, inflated block)`` of every gzip member of ``compressed``.

    zlib is called directly on ``chunk_bytes`` of input at a time, not through ``gzip.GzipFile``,
    which inflates 8-128 KB per call and releases the GIL for each: beside a busy Python thread (the
    one launching the GPU's kernels while a job's input is read on a thread) every call then waits
    for the GIL, and reading 19,000 gzip abstracts took 3.1 s instead of 0.17 s (~30x for the count of
    a larger file). zlib checks each member's CRC and length as ``gzip`` does; a member cut short
    raises ``EOFError`` and bytes that are not a member ``zlib.error`` (both in :data:`GZIP_ERRORS`)."""
    data, read = first, len(first)
    inflate, started = zlib.decompressobj(zlib.MAX_WBITS | 16), False
    while True:
        if not data:
            data = compressed.read(chunk_bytes)
            read += len(data)
            if not data:
                while started and not inflate.eof and (rest := inflate.decompress(b"", max_out)):
                    yield read, rest  # output held back by max_out when the input ran out
                if started and not inflate.eof:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                return
        if not started:  # between members: zero padding (as gzip allows)
            data = data.lstrip(b"\x00")
            if not data:
                continue
        started = True
        block = inflate.decompress(data, max_out)
        if block:
            yield read, block
        if inflate.eof:  # another member may follow
            data = inflate.unused_data
            inflate, started = zlib.decompressobj(zlib.MAX_WBITS | 16), False
        else:
            data = inflate.unconsumed_tail


class _Inflated(io.RawIOBase):
    """The inflated content of a gzip stream (every member), read through :func:`_inflate`."""

    def __init__(self, compressed: IO[bytes], chunk_bytes: int = INFLATE_INPUT_BYTES):
        self._compressed = compressed
        self._blocks = _inflate(compressed, chunk_bytes)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = memoryview(block[1])
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._compressed.close()
        super().close()


def _json_object(record: Any, _line: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    return record


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every record (JSON object) of a JSON-lines (plain or gzip), JSON or Parquet file, in order;
    blank lines are skipped and a bad record raises :class:`InvalidRecordError` naming file and line."""
    for _, record in iter_parsed(path, _json_object, False, ReadReport()):
        yield record


def text_digest(paper: Paper) -> bytes:
    # Compared as embedded: white space differences are not different texts (" ".join(t.split()) is
    # normalize_whitespace without its already-normalised shortcut, which costs a scan here).
    title, abstract = " ".join((paper.title or "").split()), " ".join((paper.abstract or "").split())
    digest = hashlib.blake2b(f"{len(title)}:{title}".encode(), digest_size=8)
    digest.update(abstract.encode())
    return digest.digest()


def read_papers(
    path: str | Path,
    id_field: str | None = None,
    skip_invalid: bool = False,
    report: ReadReport | None = None,
) -> Iterator[Paper]:
    """Stream the papers of a file.

    ``id_field`` names the id column; by default the first of paper_id / corpus_id / doc_id / id.
    Invalid records raise :class:`InvalidRecordError` naming file and line, or with
    ``skip_invalid`` are skipped and counted in ``report``. A repeated id with the same text is
    dropped; with different text it is an invalid record.
    """
    report = report if report is not None else ReadReport()
    duplicates = DuplicateCheck(str(path))

    def parse(record: Any, line: int) -> Paper | None:
        paper = paper_from_dict(record, id_field)
        if duplicates.is_new(paper.paper_id, text_digest(paper), line):
            return paper
        report.duplicates += 1
        return None

    for _, paper in iter_parsed(path, parse, skip_invalid, report):
        if paper is not None:
            report.papers += 1
            yield paper


class DuplicateCheck:
    """Ids seen so far with their texts' digests: a repeated id with the same text is a duplicate to
    drop, with another text an :class:`InvalidRecordError`."""

    def __init__(self, path: str):
        self.path = path
        self.seen: dict[str, tuple[bytes, int]] = {}

    def is_new(self, paper_id: str, digest: bytes, line: int) -> bool:
        previous = self.seen.get(paper_id)
        if previous is None:
            self.seen[paper_id] = (digest, line)
            return True
        if previous[0] != digest:
            raise InvalidRecordError(
                self.path, line, f"duplicate id with different text (first seen on line {previous[1]})", paper_id
            )
        return False


def iter_parsed(
    path: str | Path,
    parse: Callable[[Any, int], T],
    skip_invalid: bool,
    report: ReadReport,
    records: Iterable[tuple[int, Any]] | None = None,
) -> Iterator[tuple[int, T]]:
    """``(line, parse(record, line))`` for each record of a file.

    ``parse`` raises ``ValueError`` (or :class:`InvalidRecordError`) for a bad record: the read stops
    with an error naming file and line, or with ``skip_invalid`` the record is skipped and counted
    in ``report``. Damage that ends the file (:class:`InputFileError`) is never skipped.
    ``records``: ``(line, record)`` pairs from elsewhere (a dataset), named ``path`` in errors.
    """
    for line, record in iter_raw_records(path) if records is None else records:
        try:
            if isinstance(record, InvalidRecordError):
                raise record
            try:
                value = parse(record, line)
            except InvalidRecordError:
                raise
            except ValueError as exc:
                raise InvalidRecordError(str(path), line, str(exc)) from None
        except InvalidRecordError as error:
            if not skip_invalid:
                raise
            report.add_skip(error)
            continue
        yield line, value


def load_papers(
    path: str | Path,
    id_field: str | None = None,
    skip_invalid: bool = False,
    report: ReadReport | None = None,
) -> list[Paper]:
    return list(read_papers(path, id_field=id_field, skip_invalid=skip_invalid, report=report))
