"""Readers for paper files: JSON lines (optionally gzipped), JSON arrays/objects and Parquet.

Every reader yields ``(line, raw_record)`` pairs so that errors can name the record; ``read_papers``
turns them into :class:`Paper` objects, checks them, and either raises or skips bad ones.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import InvalidRecordError
from .records import Paper, paper_from_dict

MAX_REPORTED_LOCATIONS = 20
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


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open_binary(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _first_char(path: Path) -> str:
    with _open_binary(path) as handle:
        while True:
            chunk = handle.read(4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip()
            if stripped:
                return chr(stripped[0])


def detect_format(path: str | Path) -> str:
    """``parquet``, ``json`` (one array or object) or ``jsonl``, from the suffix and the content."""
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    first = _first_char(path)
    if first == "[":
        return "json"
    if first == "{" and not _first_line_is_record(path):
        return "json"  # one object mapping ids to records (SPECTER's metadata.json)
    return "jsonl"


def _first_line_is_record(path: Path) -> bool:
    with _open_binary(path) as handle:
        line = handle.readline()
    try:
        json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with _open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, InvalidRecordError(str(path), line_no, f"invalid UTF-8 ({exc.reason})")
                continue
            if not text.strip():
                continue
            try:
                yield line_no, json.loads(text)
            except json.JSONDecodeError as exc:
                yield line_no, InvalidRecordError(str(path), line_no, f"invalid JSON ({exc.msg})")


def iter_json_document(path: Path) -> Iterator[tuple[int, Any]]:
    """A JSON array of records (SciRepEval samples), or an object mapping ids to records."""
    with _open_binary(path) as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidRecordError(str(path), line, f"invalid UTF-8 ({exc.reason})") from None
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    opening = text[pos : pos + 1]
    if opening not in ("[", "{"):
        raise InvalidRecordError(str(path), 1, "expected a JSON array or object")
    pos = _skip_ws(text, pos + 1)
    closing = "]" if opening == "[" else "}"
    index = 0
    while pos < len(text) and text[pos] != closing:
        line = text.count("\n", 0, pos) + 1
        key = None
        try:
            if opening == "{":
                key, pos = decoder.raw_decode(text, pos)
                pos = _skip_ws(text, pos)
                if text[pos : pos + 1] != ":":
                    raise json.JSONDecodeError("expected ':'", text, pos)
                pos = _skip_ws(text, pos + 1)
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidRecordError(str(path), exc.lineno, f"invalid JSON ({exc.msg})") from None
        if key is not None and isinstance(value, dict) and "paper_id" not in value:
            value = {"paper_id": key, **value}
        yield line, value
        index += 1
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] == ",":
            pos = _skip_ws(text, pos + 1)
        elif text[pos : pos + 1] != closing:
            line = text.count("\n", 0, pos) + 1
            raise InvalidRecordError(str(path), line, "invalid JSON (expected ',' or end of array)")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def iter_parquet(path: Path, batch_rows: int = 8192) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def iter_raw_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line or row number, record)`` pairs; a record may be an :class:`InvalidRecordError`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = detect_format(path)
    if fmt == "parquet":
        return iter_parquet(path)
    if fmt == "json":
        return iter_json_document(path)
    return iter_jsonl(path)


def _text_digest(paper: Paper) -> bytes:
    key = json.dumps([paper.title, paper.abstract], ensure_ascii=False).encode("utf-8")
    return hashlib.blake2b(key, digest_size=8).digest()


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
    seen: dict[str, tuple[bytes, int]] = {}

    def parse(record: Any, line: int) -> Paper | None:
        paper = paper_from_dict(record, id_field)
        digest = _text_digest(paper)
        previous = seen.get(paper.paper_id)
        if previous is None:
            seen[paper.paper_id] = (digest, line)
            return paper
        if previous[0] != digest:
            raise InvalidRecordError(
                str(path), line, f"duplicate id with different text (first seen on line {previous[1]})", paper.paper_id
            )
        report.duplicates += 1
        return None

    for _, paper in iter_parsed(path, parse, skip_invalid, report):
        if paper is not None:
            report.papers += 1
            yield paper


def iter_parsed(
    path: str | Path, parse: Callable[[Any, int], T], skip_invalid: bool, report: ReadReport
) -> Iterator[tuple[int, T]]:
    """``(line, parse(record, line))`` for each record of a file.

    ``parse`` raises ``ValueError`` (or :class:`InvalidRecordError`) for a bad record: the read stops
    with an error naming file and line, or with ``skip_invalid`` the record is skipped and counted
    in ``report``. A broken JSON document ends the read: what came before it is kept.
    """
    try:
        for line, record in iter_raw_records(path):
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
    except InvalidRecordError as error:
        if not skip_invalid:
            raise
        report.add_skip(error)


def load_papers(
    path: str | Path,
    id_field: str | None = None,
    skip_invalid: bool = False,
    report: ReadReport | None = None,
) -> list[Paper]:
    return list(read_papers(path, id_field=id_field, skip_invalid=skip_invalid, report=report))
