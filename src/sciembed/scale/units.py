"""Units of work: one input shard each, read into fixed-size chunks of valid papers.

The reader stage runs as Ray tasks beside the model workers, so JSON parsing and decompression of
the next shards overlap with the encoding of earlier ones. Records are checked by
``sciembed.data.read_papers`` exactly as ``sciembed embed`` checks them.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data import InvalidRecordError, Paper, ReadReport, read_papers

INPUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".pq")


def expand_inputs(pattern: str | Path | Sequence[str | Path]) -> list[Path]:
    """Input shards, sorted by path: a glob, a folder (its paper files) or a list of either."""
    if isinstance(pattern, (list, tuple)):
        found = {p for item in pattern for p in expand_inputs(item)}
        return sorted(found)
    text = str(pattern)
    path = Path(text)
    if path.is_dir():
        paths = [p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(INPUT_SUFFIXES)]
    else:
        paths = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
    if not paths:
        raise FileNotFoundError(f"{text}: no input shards match")
    return sorted(paths)


def text_digest(paper: Paper, fields: Sequence[str]) -> int:
    """Signed 64-bit digest of the text a model embeds: tells a repeated paper from a reused id."""
    key = json.dumps([paper.get(name) for name in fields], ensure_ascii=False, default=str).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little", signed=True)


def _field(value: Any) -> str | None:
    return None if value is None else str(value)


def chunk_row(unit: str, chunk: int, papers: list[Paper], fields: Sequence[str]) -> dict[str, Any]:
    """A chunk as one Arrow-friendly row: ids, digests and one string column per text field."""
    row: dict[str, Any] = {
        "unit": unit,
        "chunk": chunk,
        "paper_ids": [p.paper_id for p in papers],
        "digests": [text_digest(p, fields) for p in papers],
        "summary": "",
    }
    for name in fields:
        row[f"text_{name}"] = [_field(p.get(name)) for p in papers]
    return row


def papers_of_row(row: dict[str, Any], fields: Sequence[str]) -> list[Paper]:
    """The papers of a chunk row, with exactly the text fields the model reads."""
    columns = {name: row[f"text_{name}"] for name in fields}
    papers = []
    for i, paper_id in enumerate(row["paper_ids"]):
        values = {name: columns[name][i] for name in fields}
        title, abstract = values.pop("title", None), values.pop("abstract", None)
        papers.append(Paper(paper_id=str(paper_id), title=title, abstract=abstract, extra=values))
    return papers


def read_unit(
    row: dict[str, Any], chunk_size: int, id_field: str | None, skip_invalid: bool, fields: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """Ray task: one input shard -> chunk rows, then one summary row (chunk -1) with its read report.

    A bad record without ``skip_invalid`` ends the unit with the error in its summary (the chunks
    before it are still embedded, so a fixed input resumes from there).
    """
    unit, path = row["unit"], row["path"]
    report = ReadReport()
    error = None
    chunks = 0
    papers = read_papers(path, id_field=id_field, skip_invalid=skip_invalid, report=report)
    buffer: list[Paper] = []
    try:
        for paper in papers:
            buffer.append(paper)
            if len(buffer) == chunk_size:
                yield chunk_row(unit, chunks, buffer, fields)
                chunks, buffer = chunks + 1, []
    except InvalidRecordError as exc:
        error = str(exc)
    if buffer and error is None:
        yield chunk_row(unit, chunks, buffer, fields)
        chunks += 1
    summary = {
        "num_chunks": chunks,
        "papers": report.papers,
        "exact_duplicates": report.duplicates,
        "skipped": report.skipped,
        "skipped_examples": report.skipped_examples,
        "error": error,
    }
    empty = chunk_row(unit, -1, [], fields)
    empty["summary"] = json.dumps(summary)
    yield empty
