"""What training must leave out: every evaluation document of the sciembed-lite tasks whose sources
training uses (``recipes.lite.TRAINING_SOURCES``), by source.

``excluded_ids(data_root)`` returns ``{"acl": ..., "paperscape": ..., "arxiv": ..., "scitldr": ...,
"ohsumed": ...}`` (ids as the source spells them: ACL ids, arXiv ids, SciTLDR paper ids, OHSUMED doc
ids): the query, candidate, train and test documents of every in-training task, plus all held-out
citing papers of the AAN and Paperscape graphs (also those no task uses as a query). Stage-1 mining
and stage-2 mixtures drop these papers in every role (and the citation edges of the held-out citing
papers).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..data import iter_records
from .lite import build_lite, mark, packaged_task_lines
from .sources import Sources, default_data_root


def _meta_ids(path: Path) -> set[str]:
    """Every document of a task's ``meta.jsonl`` (ranking rows: query documents and candidates)."""
    ids: set[str] = set()
    for rec in iter_records(path):
        if "candidates" in rec:
            if isinstance(rec["query"], dict):
                ids.add(str(rec["query"]["doc_id"]))
            ids.update(str(c["doc_id"]) for c in rec["candidates"])
        else:
            ids.add(str(rec["doc_id"]))
    return ids


def _label_ids(folder: Path) -> set[str]:
    ids: set[str] = set()
    for split in ("train", "test"):
        path = folder / f"{split}.csv"
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                ids.update(row["paper_id"] for row in csv.DictReader(handle))
    return ids


def task_document_ids(tasks_path: Path, in_training: bool = True) -> dict[str, set[str]]:
    """``{source: ids}`` of the documents of the (in- or out-of-training) tasks of a built suite."""
    folder = tasks_path.parent
    out: dict[str, set[str]] = {}
    for task in iter_records(tasks_path):
        if bool(task.get("in_training")) != in_training:
            continue
        ids: set[str] = set()
        meta = folder / task["data"]["meta"]
        if meta.is_file():
            ids |= _meta_ids(meta)
        ids |= _label_ids(folder / task["data"]["test"])
        for source in task["sources"]:
            out.setdefault(source, set()).update(ids)
    return out


def excluded_ids(data_root: str | Path | None = None, lite_dir: str | Path | None = None) -> dict[str, frozenset[str]]:
    """Ids that training must never use, by source (builds or reuses the sciembed-lite folder)."""
    root = Path(data_root) if data_root is not None else default_data_root()
    tasks_path = build_lite(root, lite_dir)
    ids = task_document_ids(tasks_path, in_training=True)
    src = Sources(root)
    for source, heldout in (("acl", src.heldout), ("paperscape", src.physics_heldout)):
        try:
            ids.setdefault(source, set()).update(heldout())
        except FileNotFoundError:
            continue  # that source is absent: nothing of it can reach training either
    sources = {
        s
        for line in packaged_task_lines()
        for s in json.loads(line)["sources"]
        if mark(json.loads(line))["in_training"]
    }
    return {source: frozenset(ids.get(source, set())) for source in sorted(sources | set(ids))}


def training_leaks(
    used: dict[str, set[str]] | dict[str, frozenset[str]], excluded: dict[str, frozenset[str]]
) -> dict[str, list[str]]:
    """The ids of a training mixture (``{source: ids it uses}``) that training must not use: empty when clean."""
    leaks = {source: sorted(set(ids) & excluded.get(source, frozenset())) for source, ids in used.items()}
    return {source: ids for source, ids in leaks.items() if ids}
