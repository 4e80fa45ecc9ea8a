"""Citation triplets on disk: SciRepEval's ``{"query": {...}, "pos": {...}, "neg": {...}}`` format.

Written as JSON lines (gzipped when the name ends in ``.gz``), one triplet a line, each paper as
``{"corpus_id", "title", "abstract"}``. Reading streams JSON lines, so millions of triplets never
sit in memory; SciRepEval's sample files (one JSON array, papers keyed by ``sha`` and
``corpus_id``) are read too. Imports nothing of sciembed outside ``sciembed.data``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import temporary_name
from .errors import InputFileError
from .readers import GZIP_ERRORS, ReadReport, iter_parsed, iter_raw_records, open_input
from .records import ID_FIELD_CANDIDATES, Paper, paper_from_dict

TRIPLET_ROLES = ("query", "pos", "neg")
#: Id fields looked up, in order, for the papers of a triplet: the one order of every reader.
TRIPLET_ID_FIELDS = ID_FIELD_CANDIDATES


@dataclass(frozen=True)
class Triplet:
    """A query paper, a paper related to it (positive) and one that is not (negative)."""

    query: Paper
    pos: Paper
    neg: Paper


def paper_to_record(paper: Paper) -> dict[str, Any]:
    """A paper as SciRepEval writes it in triplet files."""
    return {"corpus_id": paper.paper_id, "title": paper.title, "abstract": paper.abstract}


def triplet_to_dict(triplet: Triplet) -> dict[str, Any]:
    return {role: paper_to_record(getattr(triplet, role)) for role in TRIPLET_ROLES}


def _triplet_paper(value: Any, role: str, id_field: str | None) -> Paper:
    if isinstance(value, str):  # search-style triplets may carry a plain-text query
        if not value.strip():
            raise ValueError(f"{role!r} is an empty string")
        return Paper(paper_id=value, title=value)
    if not isinstance(value, dict):
        raise ValueError(f"{role!r} must be a JSON object, got {type(value).__name__}")
    try:
        return paper_from_dict(value, id_field)
    except ValueError as exc:
        raise ValueError(f"{role!r}: {exc}") from None


def triplet_from_dict(record: Any, id_field: str | None = None) -> Triplet:
    """Build a Triplet from a parsed record; raises ``ValueError`` saying what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object with query/pos/neg, got {type(record).__name__}")
    missing = [role for role in TRIPLET_ROLES if role not in record]
    if missing:
        raise ValueError(f"missing {', '.join(repr(m) for m in missing)} (expected query, pos, neg)")
    query, pos, neg = (_triplet_paper(record[role], role, id_field) for role in TRIPLET_ROLES)
    return Triplet(query=query, pos=pos, neg=neg)


def read_triplets(
    path: str | Path,
    skip_invalid: bool = False,
    id_field: str | None = None,
    report: ReadReport | None = None,
) -> Iterator[Triplet]:
    """Stream the triplets of a JSON-lines file (plain or gzipped) or of a JSON array.

    Papers take their id from ``id_field`` or the first of corpus_id / paper_id / doc_id / id /
    sha. A bad record raises :class:`InvalidRecordError` naming ``file:line``; with
    ``skip_invalid`` it is skipped and counted in ``report`` (``report.papers`` counts triplets).
    """
    report = report if report is not None else ReadReport()
    for _, triplet in iter_parsed(
        path, lambda record, _line: triplet_from_dict(record, id_field), skip_invalid, report
    ):
        report.papers += 1
        yield triplet


def _open_text_for_write(path: Path, compress: bool):
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        # mtime=0: the same triplets give byte-identical files
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=open(path, "wb"), mtime=0)
        return _GzipText(raw)
    return open(path, "w", encoding="utf-8", newline="\n")


class _GzipText(io.TextIOWrapper):
    """A text wrapper that also closes the file under a ``GzipFile`` built from a file object."""

    def __init__(self, raw: gzip.GzipFile):
        super().__init__(raw, encoding="utf-8", newline="\n")
        self._file = raw.fileobj

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._file is not None and not self._file.closed:
                self._file.close()


class TripletWriter:
    """Write triplets one at a time (JSON lines, gzip when the name ends in ``.gz``).

    Use as a context manager; ``count`` says how many were written. The file is written under a
    temporary name and appears at ``path`` only when the block ends without an error; on an
    error the temporary file is removed (a killed process leaves only a ``.tmp`` file).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0
        self._tmp = temporary_name(self.path)
        self._handle = _open_text_for_write(self._tmp, self.path.name.endswith(".gz"))

    def write(self, triplet: Triplet) -> None:
        self._handle.write(json.dumps(triplet_to_dict(triplet), ensure_ascii=False))
        self._handle.write("\n")
        self.count += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file (``keep``) or remove what was written."""
        if self._handle.closed:
            return
        try:
            self._handle.close()
        finally:
            if keep:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TripletWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(keep=exc_type is None)


def write_triplets(triplets: Iterable[Triplet], path: str | Path) -> int:
    """Stream triplets to ``path``; returns how many were written."""
    with TripletWriter(path) as writer:
        for triplet in triplets:
            writer.write(triplet)
    return writer.count


def count_triplets(path: str | Path) -> int:
    """Triplets in a file without building them: non-blank lines of JSON lines, items of a JSON array."""
    with open_input(path) as (fmt, stream):
        if fmt != "jsonl":
            return sum(1 for _ in iter_raw_records(path))
        try:
            return sum(1 for raw in stream if raw.strip())
        except GZIP_ERRORS as exc:
            raise InputFileError(str(path), None, f"truncated or corrupt gzip data ({exc})") from None


__all__ = [
    "TRIPLET_ID_FIELDS",
    "Triplet",
    "TripletWriter",
    "count_triplets",
    "paper_to_record",
    "read_triplets",
    "triplet_from_dict",
    "triplet_to_dict",
    "write_triplets",
]
