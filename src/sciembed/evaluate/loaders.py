"""Task data: local files in SciRepEval's formats, or Hugging Face datasets (``datasets``, optional).

Local formats (see ``../shared/docs/scirepeval-protocol.md``):

- documents (``meta``): JSON lines (also a JSON array, gzip or Parquet), one document per line with
  ``doc_id`` / ``corpus_id`` / ``paper_id``, ``title``, ``abstract``, optional ``venue``, ``year``; for
  proximity and search tasks a line may instead be ``{"query": <document or string>, "doc_id"?,
  "candidates": [<document>, ...]}`` (candidates may carry a graded ``score``).
- classification / regression ``test``: a folder with ``train.csv`` and ``test.csv`` (``paper_id,label``;
  multi-label: a JSON / Python list, or labels separated by ``|``).
- proximity / search ``test``: a folder with ``test_qrel.jsonl`` (``query_id, cand_id, score``), or that file.
- paper-reviewer matching: ``test_hard_qrel.jsonl``, ``test_soft_qrel.jsonl`` in ``test`` and
  ``reviewer_metadata.jsonl`` (``r_id, papers``) in ``reviewers`` (a folder or the file).
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import ID_FIELD_CANDIDATES, InvalidRecordError, Paper, ReadReport, paper_from_dict, resolve_id
from ..data.readers import iter_parsed, iter_raw_records
from .registry import DataRef

QREL_FILE = "test_qrel.jsonl"
MAX_EXAMPLES = 5


class TaskDataError(RuntimeError):
    """Task data that cannot be loaded (missing file, no network, bad format)."""


@dataclass
class Documents:
    """A task's documents, and for proximity / search tasks its queries and candidate lists."""

    docs: dict[str, Paper] = field(default_factory=dict)
    queries: dict[str, Paper | str] = field(default_factory=dict)
    candidates: dict[str, list[str]] = field(default_factory=dict)
    inline_qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    report: ReadReport = field(default_factory=ReadReport)

    @property
    def skipped(self) -> int:
        return self.report.skipped

    @property
    def skipped_examples(self) -> list[str]:
        return self.report.skipped_examples[:MAX_EXAMPLES]

    def query(self, qid: str) -> Paper | str | None:
        return self.queries.get(qid) or self.docs.get(qid)


# ---- Hugging Face -------------------------------------------------------------------------------------
def _hf_load(ref: DataRef) -> Any:
    try:
        import datasets  # noqa: F401  (optional extra: pip install sciembed[datasets])
    except ImportError:
        raise TaskDataError(
            f"{ref}: a Hugging Face dataset needs the 'datasets' package (pip install 'sciembed[datasets]')"
        ) from None
    try:
        return datasets.load_dataset(ref.hf_name, ref.hf_config)
    except Exception as exc:  # offline, unknown dataset, ... : report, never crash the run
        raise TaskDataError(f"{ref}: could not load the Hugging Face dataset ({type(exc).__name__}: {exc})") from None


def _hf_rows(ref: DataRef, prefer: tuple[str, ...] = ("evaluation", "test", "train")) -> Iterator[tuple[int, Any]]:
    ds = _hf_load(ref)
    splits = list(ds.keys()) if hasattr(ds, "keys") else [None]
    split = next((s for s in prefer if s in splits), splits[0])
    rows = ds[split] if split is not None else ds
    for index, row in enumerate(rows, start=1):
        yield index, dict(row)


# ---- documents ----------------------------------------------------------------------------------------
def _records(ref: DataRef) -> tuple[str, Iterator[tuple[int, Any]]]:
    """The name errors use and the ``(line, record)`` pairs of a ``meta`` source."""
    if not ref.is_local:
        return str(ref), _hf_rows(ref)
    path = ref.path
    if path.is_dir():
        candidates = [p for p in sorted(path.iterdir()) if p.suffix in (".jsonl", ".json", ".gz", ".parquet")]
        if len(candidates) != 1:
            raise TaskDataError(f"{path}: expected one documents file in the folder, found {len(candidates)}")
        path = candidates[0]
    if not path.is_file():
        raise TaskDataError(f"{path}: no such documents file")
    return str(path), iter_raw_records(path)


def _doc_id(record: dict[str, Any]) -> str | None:
    try:
        return resolve_id(record)[1]
    except ValueError:
        return None


def load_documents(ref: DataRef) -> Documents:
    """All documents of a ``meta`` source; unusable records are counted (``skipped``), not fatal."""
    out = Documents()
    source, records = _records(ref)

    def parse(record: Any, line: int) -> None:
        if isinstance(record, dict) and "query" in record and "candidates" in record:
            _add_query_line(out, record, line, source)
        else:
            paper = paper_from_dict(record)
            out.docs.setdefault(paper.paper_id, paper)

    for _ in iter_parsed(source, parse, True, out.report, records):
        pass
    return out


def _add_query_line(out: Documents, record: dict[str, Any], line: int, source: str) -> None:
    """A query and its candidates; a bad candidate is skipped (and reported) on its own."""
    query = record["query"]
    if isinstance(query, str):
        if not query.strip():
            raise ValueError("empty query")
        qid = _doc_id(record) or str(record.get("query_id") or f"q{line}")
        out.queries[qid] = query
    else:
        try:
            paper = paper_from_dict(query)
        except ValueError as exc:
            raise ValueError(f"query: {exc}") from None
        qid = str(record.get("query_id") or paper.paper_id)
        out.queries[qid] = paper
    cands = record["candidates"]
    if not isinstance(cands, list):
        raise ValueError("'candidates' must be a list")
    ids: list[str] = []
    for index, cand in enumerate(cands):
        try:
            paper = paper_from_dict(cand)
        except ValueError as exc:
            out.report.add_skip(InvalidRecordError(source, line, f"candidate {index}: {exc}"))
            continue
        out.docs.setdefault(paper.paper_id, paper)
        ids.append(paper.paper_id)
        score = cand.get("score")
        if score is not None:
            out.inline_qrels.setdefault(qid, {})[paper.paper_id] = int(float(score))
    out.candidates[qid] = ids


# ---- labels -------------------------------------------------------------------------------------------
def parse_label(value: Any, multi_label: bool) -> Any:
    """A CSV / dataset label: a string, number, or for multi-label tasks a list of strings."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if multi_label:
        text = str(value).strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = ast.literal_eval(text)
            return [str(v) for v in parsed]
        return [p.strip() for p in text.split("|") if p.strip()]
    return value


def _read_label_csv(path: Path) -> list[tuple[str, Any]]:
    if not path.is_file():
        raise TaskDataError(f"{path}: no such file")
    rows: list[tuple[str, Any]] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        id_key = next((k for k in ID_FIELD_CANDIDATES if k in fields), None)
        if id_key is None or "label" not in fields:
            raise TaskDataError(f"{path}: expected columns paper_id,label; got {fields}")
        for line, row in enumerate(reader, start=2):
            if row[id_key] in (None, "") or row["label"] in (None, ""):
                raise TaskDataError(f"{path}:{line}: empty paper_id or label")
            rows.append((str(row[id_key]), row["label"]))
    return rows


def load_labels(ref: DataRef, multi_label: bool = False) -> dict[str, list[tuple[str, Any]]]:
    """``{"train": [(paper_id, label)], "test": [...]}`` from a folder of CSVs or a HF dataset."""
    if ref.is_local:
        if not ref.path.is_dir():
            raise TaskDataError(f"{ref.path}: expected a folder with train.csv and test.csv")
        splits = {s: _read_label_csv(ref.path / f"{s}.csv") for s in ("train", "test")}
    else:
        ds = _hf_load(ref)
        splits = {}
        for split in ("train", "test"):
            if split not in ds:
                raise TaskDataError(f"{ref}: the dataset has no {split!r} split")
            splits[split] = [(str(_doc_id(row) or row.get("paper_id")), row["label"]) for row in ds[split]]
    return {s: [(pid, parse_label(label, multi_label)) for pid, label in rows] for s, rows in splits.items()}


# ---- relevance judgements -----------------------------------------------------------------------------
def _qrels_from_rows(rows: Iterator[tuple[int, Any]], source: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line, row in rows:
        if isinstance(row, InvalidRecordError):
            raise TaskDataError(str(row))
        try:
            qid, cid, score = str(row["query_id"]), str(row["cand_id"]), int(float(row["score"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TaskDataError(f"{source}:{line}: expected query_id, cand_id, score ({exc})") from None
        qrels.setdefault(qid, {})[cid] = score
    return qrels


def load_qrels(ref: DataRef, filename: str = QREL_FILE) -> dict[str, dict[str, int]]:
    """Graded relevance ``{query_id: {cand_id: score}}`` (0 = judged not relevant)."""
    if ref.is_local:
        path = ref.path / filename if ref.path.is_dir() or not ref.path.suffix else ref.path
        if not path.is_file():
            raise TaskDataError(f"{path}: no such qrel file")
        return _qrels_from_rows(iter_raw_records(path), str(path))
    split_hint = filename.replace("_qrel.jsonl", "").replace("test_", "")
    ds = _hf_load(ref)
    split = next((s for s in ds.keys() if split_hint in s), None) or ("test" if "test" in ds else list(ds.keys())[0])
    return _qrels_from_rows(((i, dict(r)) for i, r in enumerate(ds[split], start=1)), str(ref))


def load_reviewers(ref: DataRef) -> dict[str, list[str]]:
    """``{reviewer_id: [paper ids]}`` from ``reviewer_metadata.jsonl`` (or a HF dataset)."""
    if ref.is_local:
        path = ref.path / "reviewer_metadata.jsonl" if ref.path.is_dir() or not ref.path.suffix else ref.path
        if not path.is_file():
            raise TaskDataError(f"{path}: no such reviewer file")
        rows: Iterator[tuple[int, Any]] = iter_raw_records(path)
    else:
        rows = _hf_rows(ref, prefer=("evaluation", "test", "train"))
    reviewers: dict[str, list[str]] = {}
    for line, row in rows:
        if isinstance(row, InvalidRecordError):
            raise TaskDataError(str(row))
        try:
            reviewers[str(row["r_id"])] = [str(p) for p in row["papers"]]
        except (KeyError, TypeError) as exc:
            raise TaskDataError(f"{ref}:{line}: expected r_id and papers ({exc})") from None
    return reviewers
