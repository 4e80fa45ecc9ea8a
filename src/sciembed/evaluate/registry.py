"""Task lists in SciRepEval's ``scirepeval_tasks.jsonl`` format, parsed into :class:`TaskSpec` objects.

One JSON object per line::

    {"name", "type": classification|regression|proximity|adhoc_search,
     "data": {"meta": ..., "test": ..., "reviewers"?: ..., "simple_format"?: bool},
     "metrics": [...], "fields"?: [...], "few_shot"?: [{"sample_size", "iterations"}],
     "multi_label"?: bool, "embeddings"?: {"save"|"load": path}, "in_training"?: bool,
     "cv_seeds"?: int, "cross_fit"?: int, "sources"?: [...]}

``meta`` / ``test`` / ``reviewers`` are either ``{"name": <HF dataset>, "config": <name>}`` or a local
path (relative paths are resolved against the task file's folder). ``in_training`` is a sciembed
extension; without it the SciRepEval tasks used in multi-task training are recognised by name.
``cv_seeds`` (sciembed): classification / regression grid searches run with that many shuffled 3-fold
splits (seeds 0 .. n-1) and the metric is the mean over seeds; without it, one unshuffled split
(SciRepEval). ``cross_fit`` = k >= 2 (sciembed): the train and test papers are pooled and every one is
predicted by the model fitted on the other k - 1 folds (:mod:`sciembed.evaluate.cross_fit`: k times the
test items of a fixed split, for tasks too small to decide otherwise). ``sources`` (sciembed): the
data sources a task is built from (recipes mark by them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .metric_names import check_metric_names

TASK_TYPES = ("classification", "regression", "proximity", "adhoc_search")
# Task type -> the adapter format of its documents (search queries use adhoc_query).
TYPE_FORMATS = {
    "classification": "classification",
    "regression": "regression",
    "proximity": "proximity",
    "adhoc_search": "proximity",
}
DEFAULT_METRICS = {
    "classification": ["f1_macro"],
    "regression": ["kendalltau"],
    "proximity": ["map", "ndcg"],
    "adhoc_search": ["ndcg"],
    "reviewer_matching": ["P_5", "P_10"],
}
# SciRepEval tasks used in its multi-task training (marked * in the paper).
SCIREPEVAL_IN_TRAINING = {
    "mesh",
    "mesh descriptors",
    "fields of study",
    "fos",
    "citation count",
    "publication year",
    "same author detection",
    "highly influential citations",
    "search",
    "citation prediction",
}
KNOWN_KEYS = {
    "name",
    "type",
    "data",
    "metrics",
    "fields",
    "few_shot",
    "multi_label",
    "embeddings",
    "simple_format",
    "in_training",
    "description",
    "cv_seeds",
    "cross_fit",
    "sources",
}
DATA_KEYS = {"meta", "test", "reviewers", "simple_format"}


class TaskFileError(ValueError):
    """An invalid task line; the message names the file and the line number."""

    def __init__(self, path: str, line: int, reason: str):
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


@dataclass(frozen=True)
class DataRef:
    """Where a piece of task data lives: a Hugging Face dataset (name, config) or a local path."""

    path: Path | None = None
    hf_name: str | None = None
    hf_config: str | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def key(self) -> str:
        return str(self.path) if self.path is not None else f"hf:{self.hf_name}/{self.hf_config}"

    def __str__(self) -> str:
        return self.key()


@dataclass(frozen=True)
class FewShot:
    sample_size: int
    iterations: int


@dataclass
class TaskSpec:
    """A declarative evaluation task (one line of a task file)."""

    name: str
    type: str
    meta: DataRef
    test: DataRef | None = None
    reviewers: DataRef | None = None
    metrics: list[str] = field(default_factory=list)
    fields: list[str] | None = None
    few_shot: list[FewShot] = field(default_factory=list)
    multi_label: bool = False
    embeddings_key: str | None = None
    simple_format: bool = False
    in_training: bool = False
    description: str = ""
    cv_seeds: int = 0
    cross_fit: int = 0
    sources: tuple[str, ...] = ()
    source: str = ""
    line: int = 0

    @property
    def kind(self) -> str:
        """``classification``, ``regression``, ``proximity``, ``adhoc_search`` or ``reviewer_matching``."""
        return "reviewer_matching" if self.reviewers is not None else self.type

    @property
    def format(self) -> str:
        """Adapter format of the task's documents (search candidates: proximity)."""
        return TYPE_FORMATS[self.type]

    @property
    def query_format(self) -> str:
        """Adapter format of the task's queries (``adhoc_query`` for search, else :attr:`format`)."""
        return "adhoc_query" if self.type == "adhoc_search" else self.format

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "format": self.format,
            "query_format": self.query_format,
            "meta": str(self.meta),
            "test": str(self.test) if self.test else None,
            "reviewers": str(self.reviewers) if self.reviewers else None,
            "metrics": list(self.metrics),
            "main_metric": self.main_metric,
            "fields": self.fields,
            "few_shot": [{"sample_size": f.sample_size, "iterations": f.iterations} for f in self.few_shot],
            "multi_label": self.multi_label,
            "in_training": self.in_training,
            "embeddings": self.embeddings_key,
            "description": self.description,
            "cv_seeds": self.cv_seeds,
            "cross_fit": self.cross_fit,
            "sources": list(self.sources),
            "source": self.source,
        }


def _data_ref(value: Any, base_dir: Path, what: str) -> DataRef:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"data.{what} is an empty path")
        path = Path(value).expanduser()
        return DataRef(path=path if path.is_absolute() else base_dir / path)
    if isinstance(value, dict):
        if "path" in value and isinstance(value["path"], str) and "name" not in value:
            return _data_ref(value["path"], base_dir, what)
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"data.{what} needs a 'name' (Hugging Face dataset) or a local path")
        config = value.get("config")
        if config is not None and not isinstance(config, str):
            raise ValueError(f"data.{what}.config must be a string")
        return DataRef(hf_name=name, hf_config=config)
    raise ValueError(f"data.{what} must be a path or {{'name', 'config'}}, got {type(value).__name__}")


def _str_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return list(value)


def parse_task(obj: Any, base_dir: str | Path = ".", line: int = 0, source: str = "") -> TaskSpec:
    """Build a :class:`TaskSpec` from one decoded task line; raises ``ValueError`` with the reason."""
    base_dir = Path(base_dir)
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - KNOWN_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {unknown}")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("missing 'name'")
    task_type = obj.get("type")
    if task_type not in TASK_TYPES:
        raise ValueError(f"task {name!r}: 'type' must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
    data = obj.get("data")
    if not isinstance(data, dict):
        raise ValueError(f"task {name!r}: missing 'data' object")
    bad_data = sorted(set(data) - DATA_KEYS)
    if bad_data:
        raise ValueError(f"task {name!r}: unknown data keys {bad_data}")
    if "meta" not in data:
        raise ValueError(f"task {name!r}: missing data.meta")
    meta = _data_ref(data["meta"], base_dir, "meta")
    test = _data_ref(data["test"], base_dir, "test") if data.get("test") is not None else None
    reviewers = _data_ref(data["reviewers"], base_dir, "reviewers") if data.get("reviewers") is not None else None
    if task_type in ("classification", "regression") and test is None:
        raise ValueError(f"task {name!r}: {task_type} needs data.test (train.csv / test.csv)")
    if reviewers is not None and task_type != "proximity":
        raise ValueError(f"task {name!r}: data.reviewers is only valid for proximity tasks")
    kind = "reviewer_matching" if reviewers is not None else task_type
    metrics = _str_list(obj["metrics"], "metrics") if "metrics" in obj else list(DEFAULT_METRICS[kind])
    if not metrics:
        raise ValueError(f"task {name!r}: 'metrics' is empty")
    check_metric_names(kind, metrics, f"task {name!r}: ")
    fields = _str_list(obj["fields"], "fields") if obj.get("fields") is not None else None
    few_shot = []
    for item in obj.get("few_shot") or []:
        if not isinstance(item, dict):
            raise ValueError(f"task {name!r}: few_shot entries must be objects")
        size, iterations = item.get("sample_size"), item.get("iterations")
        if not isinstance(size, int) or not isinstance(iterations, int) or size < 1 or iterations < 1:
            raise ValueError(f"task {name!r}: few_shot needs positive integer sample_size and iterations")
        few_shot.append(FewShot(size, iterations))
    if few_shot and task_type != "classification":
        raise ValueError(f"task {name!r}: few_shot is only valid for classification tasks")
    multi_label = obj.get("multi_label", False)
    if not isinstance(multi_label, bool):
        raise ValueError(f"task {name!r}: multi_label must be true or false")
    embeddings = obj.get("embeddings")
    embeddings_key = None
    if embeddings is not None:
        if not isinstance(embeddings, dict) or len(embeddings) != 1 or next(iter(embeddings)) not in ("save", "load"):
            raise ValueError(f"task {name!r}: embeddings must be {{'save': path}} or {{'load': path}}")
        embeddings_key = str(next(iter(embeddings.values())))
    in_training = obj.get("in_training")
    if in_training is None:
        in_training = name.strip().lower() in SCIREPEVAL_IN_TRAINING
    if not isinstance(in_training, bool):
        raise ValueError(f"task {name!r}: in_training must be true or false")
    simple = bool(obj.get("simple_format", data.get("simple_format", False)))
    cv_seeds = obj.get("cv_seeds", 0)
    if not isinstance(cv_seeds, int) or isinstance(cv_seeds, bool) or cv_seeds < 0:
        raise ValueError(f"task {name!r}: cv_seeds must be a non-negative integer")
    if cv_seeds and task_type not in ("classification", "regression"):
        raise ValueError(f"task {name!r}: cv_seeds is only valid for classification and regression tasks")
    cross_fit = obj.get("cross_fit", 0)
    if not isinstance(cross_fit, int) or isinstance(cross_fit, bool) or cross_fit < 0 or cross_fit == 1:
        raise ValueError(f"task {name!r}: cross_fit must be 0 (the given split) or a number of folds >= 2")
    if cross_fit and task_type not in ("classification", "regression"):
        raise ValueError(f"task {name!r}: cross_fit is only valid for classification and regression tasks")
    if cross_fit and few_shot:
        raise ValueError(f"task {name!r}: cross_fit and few_shot cannot be combined (few-shot samples the train split)")
    sources = _str_list(obj["sources"], "sources") if obj.get("sources") is not None else []
    return TaskSpec(
        name=name.strip(),
        type=task_type,
        meta=meta,
        test=test,
        reviewers=reviewers,
        metrics=metrics,
        fields=fields,
        few_shot=few_shot,
        multi_label=multi_label,
        embeddings_key=embeddings_key,
        simple_format=simple,
        in_training=in_training,
        description=str(obj.get("description", "")),
        cv_seeds=cv_seeds,
        cross_fit=cross_fit,
        sources=tuple(sources),
        source=source,
        line=line,
    )


def parse_task_lines(lines: list[str], base_dir: str | Path = ".", source: str = "<tasks>") -> list[TaskSpec]:
    """Parse task lines; every error names ``source`` and the 1-based line number. Names must be unique."""
    tasks: list[TaskSpec] = []
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#") or text.startswith("//"):
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskFileError(source, line_no, f"invalid JSON ({exc.msg})") from None
        try:
            task = parse_task(obj, base_dir, line_no, source)
        except ValueError as exc:
            raise TaskFileError(source, line_no, str(exc)) from None
        if task.name in seen:
            raise TaskFileError(source, line_no, f"duplicate task name {task.name!r} (first on line {seen[task.name]})")
        seen[task.name] = line_no
        tasks.append(task)
    return tasks


def read_task_file(path: str | Path) -> list[TaskSpec]:
    """Read a task list (``scirepeval_tasks.jsonl`` format); local paths are relative to its folder."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such task file")
    lines = path.read_text(encoding="utf-8").splitlines()
    return parse_task_lines(lines, base_dir=path.resolve().parent, source=str(path))


def select_tasks(tasks: list[TaskSpec], names: list[str] | None) -> list[TaskSpec]:
    """The tasks named in ``names`` (case-insensitive), in task-file order; all when ``names`` is empty."""
    if not names:
        return list(tasks)
    wanted = {n.lower() for n in names}
    known = {t.name.lower() for t in tasks}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"unknown task names {unknown}; known: {', '.join(t.name for t in tasks)}")
    return [t for t in tasks if t.name.lower() in wanted]
