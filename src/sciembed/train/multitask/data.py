"""Reading task examples and mixing tasks into batches (SciRepEval's mixed proportional strategy)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...data.readers import ReadReport, iter_parsed, iter_records
from ...data.records import ID_FIELD_CANDIDATES, Paper, paper_from_dict, resolve_id
from .config import Stage2Config, TaskConfig


def read_papers_table(path: str | Path) -> dict[str, Paper]:
    papers: dict[str, Paper] = {}
    for _, paper in iter_parsed(path, lambda record, _line: paper_from_dict(record), False, ReadReport()):
        papers[paper.paper_id] = paper
    return papers


@dataclass
class TaskExamples:
    """One task's examples, ready to tokenize: per role a list of papers or query strings, and targets."""

    task: TaskConfig
    roles: dict[str, list[Paper | str]]
    targets: torch.Tensor | None = None
    label_names: list[str] | None = None
    label_mean: float = 0.0
    label_std: float = 1.0
    skipped: int = 0

    def __len__(self) -> int:
        return len(next(iter(self.roles.values())))

    @property
    def num_outputs(self) -> int:
        if self.task.format in ("classification", "multi_label"):
            return len(self.label_names or [])
        return 1 if self.task.format == "regression" else 0

    def meta(self) -> dict[str, Any]:
        return {
            "examples": len(self),
            "skipped": self.skipped,
            "labels": self.label_names,
            "label_mean": self.label_mean,
            "label_std": self.label_std,
        }


def _paper_id(record: dict[str, Any]) -> str | dict[str, Any] | None:
    """The paper a record names: an inline ``doc`` object, else the id of ``doc`` or an id field
    (the one id resolver), None when it names none."""
    if isinstance(record.get("doc"), dict):
        return record["doc"]
    try:
        return resolve_id(record, candidates=("doc", *ID_FIELD_CANDIDATES))[1]
    except ValueError:
        return None


def _resolve_doc(value: Any, papers: Mapping[str, Paper], query_text: bool) -> Paper | str | None:
    if isinstance(value, dict):
        try:
            resolve_id(value)
        except ValueError:  # an inline document without an id
            return Paper(
                paper_id="",
                title=value.get("title"),
                abstract=value.get("abstract"),
                extra={k: v for k, v in value.items() if k not in ("title", "abstract")},
            )
        return paper_from_dict(value)
    if isinstance(value, (str, int)):
        if query_text and isinstance(value, str):
            return value
        return papers.get(str(value))
    return None


def load_task_examples(
    task: TaskConfig,
    config: Stage2Config,
    papers: Mapping[str, Paper] | None = None,
    label_names: Sequence[str] | None = None,
) -> TaskExamples:
    """Read a task's JSON lines (up to ``max_examples``); examples whose papers are unknown are skipped."""
    papers = papers or {}
    roles = list(task.role_adapters)
    columns: dict[str, list[Paper | str]] = {r: [] for r in roles}
    raw_labels: list[Any] = []
    skipped = 0
    for record in iter_records(config.resolve(task.data)):
        if task.max_examples is not None and len(columns[roles[0]]) >= task.max_examples:
            break
        docs = {}
        for role in roles:
            value = record.get(role)
            if value is None and role == "paper":
                value = _paper_id(record)
            docs[role] = _resolve_doc(value, papers, query_text=(role == "query" and task.format == "adhoc_search"))
        if any(d is None for d in docs.values()):
            skipped += 1
            continue
        if task.loss != "triplet":
            label = record.get(task.label)
            if label is None or label == []:
                skipped += 1
                continue
            raw_labels.append(label)
        for role in roles:
            columns[role].append(docs[role])
    examples = TaskExamples(task=task, roles=columns, skipped=skipped)
    if task.loss in ("ce", "bce"):
        names = list(label_names or task.labels or [])
        if not names:
            flat = [x for lab in raw_labels for x in (lab if isinstance(lab, list) else [lab])]
            names = sorted({str(x) for x in flat})
        index = {n: i for i, n in enumerate(names)}
        if task.loss == "ce":
            keep = [i for i, lab in enumerate(raw_labels) if str(lab) in index]
            examples.targets = torch.tensor([index[str(raw_labels[i])] for i in keep], dtype=torch.long)
        else:
            keep = [i for i, lab in enumerate(raw_labels) if any(str(x) in index for x in lab)]
            target = torch.zeros(len(keep), len(names))
            for row, i in enumerate(keep):
                for x in raw_labels[i]:
                    if str(x) in index:
                        target[row, index[str(x)]] = 1.0
            examples.targets = target
        if len(keep) != len(raw_labels):
            examples.skipped += len(raw_labels) - len(keep)
            examples.roles = {r: [col[i] for i in keep] for r, col in columns.items()}
        examples.label_names = names
    elif task.loss == "mse":
        values = torch.tensor([float(x) for x in raw_labels], dtype=torch.float32)
        examples.label_mean = float(values.mean()) if len(values) else 0.0
        examples.label_std = float(values.std()) if len(values) > 1 and float(values.std()) > 0 else 1.0
        examples.targets = (values - examples.label_mean) / examples.label_std
    return examples


def load_all_examples(config: Stage2Config) -> dict[str, TaskExamples]:
    papers = read_papers_table(config.resolve(config.papers)) if config.papers else {}
    out: dict[str, TaskExamples] = {}
    for task in config.tasks:
        examples = load_task_examples(task, config, papers)
        if not len(examples):
            raise ValueError(f"task {task.name!r}: no usable examples in {config.resolve(task.data)}")
        out[task.name] = examples
    return out


# ---- mixing ---------------------------------------------------------------------------------------------
@dataclass
class MixedBatches:
    """Batches that mix tasks in proportion to their sizes (SciRepEval's "mixed proportional").

    Every epoch holds each example of every task exactly once; the (task, index) pairs of all tasks
    are shuffled together with a generator seeded by ``(seed, epoch)`` and cut into batches, so a
    task's share of every batch is its share of the mixture in expectation, and the order is the
    same on every machine. With ``world_size > 1`` each process takes every ``world_size``-th batch
    (the epoch is trimmed so that all processes take the same number of steps).
    """

    sizes: dict[str, int]
    batch_size: int
    seed: int = 42
    rank: int = 0
    world_size: int = 1
    drop_last: bool = False
    _cache: dict[int, list[list[tuple[str, int]]]] = field(default_factory=dict, repr=False)

    def epoch(self, epoch: int) -> list[list[tuple[str, int]]]:
        if epoch not in self._cache:
            pairs = [(name, i) for name in sorted(self.sizes) for i in range(self.sizes[name])]
            random.Random(f"{self.seed}:{epoch}").shuffle(pairs)
            batches = [pairs[i : i + self.batch_size] for i in range(0, len(pairs), self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            usable = len(batches) - len(batches) % self.world_size
            self._cache = {epoch: batches[:usable][self.rank :: self.world_size]}
        return self._cache[epoch]

    def steps_per_epoch(self) -> int:
        return len(self.epoch(0))

    @staticmethod
    def by_task(batch: Sequence[tuple[str, int]]) -> dict[str, list[int]]:
        grouped: dict[str, list[int]] = {}
        for name, index in batch:
            grouped.setdefault(name, []).append(index)
        return grouped
