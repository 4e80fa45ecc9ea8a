"""Writers and splitters shared by the sciembed-lite builders (SciRepEval's local task formats)."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..data import normalize_whitespace


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_ranking(folder: Path, rows: Iterable[dict[str, Any]], qrels: Iterable[dict[str, Any]]) -> None:
    """A proximity / search task: queries with their candidates, and the relevance judgements."""
    write_jsonl(folder / "meta.jsonl", rows)
    write_jsonl(folder / "test_qrel.jsonl", qrels)


def write_labels(folder: Path, split: str, rows: Iterable[tuple[str, Any]]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["paper_id", "label"])
        for pid, label in rows:
            writer.writerow([pid, json.dumps(label) if isinstance(label, list) else label])
            count += 1
    return count


def write_supervised(
    folder: Path, docs: Iterable[dict[str, Any]], labels: dict[str, Any], train: list[str], test: list[str]
) -> dict[str, int]:
    """A classification / regression task: ``meta.jsonl`` plus ``train.csv`` / ``test.csv``."""
    n_docs = write_jsonl(folder / "meta.jsonl", docs)
    write_labels(folder, "train", ((p, labels[p]) for p in train))
    write_labels(folder, "test", ((p, labels[p]) for p in test))
    return {"documents": n_docs, "train": len(train), "test": len(test)}


def doc(pid: str, title: str | None, abstract: str | None, **extra: Any) -> dict[str, Any]:
    row = {
        "doc_id": str(pid),
        "title": normalize_whitespace(title) if title else None,
        "abstract": normalize_whitespace(abstract) if abstract else None,
    }
    row.update({k: v for k, v in extra.items() if v is not None})
    return row


def random_split(ids: list[str], rng: random.Random, test_fraction: float = 1 / 3) -> tuple[list[str], list[str]]:
    ids = list(ids)
    rng.shuffle(ids)
    n_test = int(round(len(ids) * test_fraction))
    return ids[n_test:], ids[:n_test]


def stratified_split(
    labels: dict[str, str], rng: random.Random, test_fraction: float = 1 / 3
) -> tuple[list[str], list[str]]:
    by_class: dict[str, list[str]] = defaultdict(list)
    for pid in sorted(labels):
        by_class[labels[pid]].append(pid)
    train, test = [], []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_test = max(1, int(round(len(members) * test_fraction))) if len(members) >= 2 else 0
        test += members[:n_test]
        train += members[n_test:]
    return train, test


def stratified_sample(labels: dict[str, str], n: int, rng: random.Random) -> list[str]:
    """About ``n`` ids with the class proportions of ``labels`` (every class keeps at least one)."""
    if n >= len(labels):
        return sorted(labels)
    by_class: dict[str, list[str]] = defaultdict(list)
    for pid in sorted(labels):
        by_class[labels[pid]].append(pid)
    chosen: list[str] = []
    for label in sorted(by_class):
        members = by_class[label]
        take = max(1, int(round(len(members) * n / len(labels))))
        chosen += rng.sample(members, min(take, len(members)))
    return sorted(chosen)
