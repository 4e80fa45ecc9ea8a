"""Typed results of an evaluation run (in the style of MTEB's ``TaskResult``).

``TaskResult`` (one task, one model), ``ModelResult`` (one model over the task list, with its averages),
``SuiteResult`` (the whole run: what ``run_benchmark`` returns and ``results.json`` holds) and the
paired-bootstrap ``Comparison``. Each has ``to_json()`` (the exact ``results.json`` layout, NaN written
as null) and ``from_json()``, which also reads the files of older versions (no per-item data, no
CV seeds, no comparisons).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OK, SKIPPED, FAILED = "ok", "skipped", "failed"


def _number(value: Any) -> float:
    """A score as a float; null (a NaN written by ``to_json``) reads back as NaN."""
    return float("nan") if value is None else float(value)


def _plain(value: Any) -> Any:
    """JSON-ready: NaN -> None, numpy scalars -> Python numbers, tuples -> lists, recursively."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _metric(value: Any) -> Any:
    return _number(value) if value is None or isinstance(value, (int, float)) else value


# ---- one task ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemScores:
    """Per-item data of one task for the paired bootstrap, in evaluation order.

    Ranking tasks: ``scores`` (the main metric per query). Supervised tasks: ``gold`` labels and one
    list of ``predictions`` per CV seed; multi-label tasks add ``labels`` (every class of the task).
    """

    ids: list[str]
    scores: list[float] | None = None
    gold: list[Any] | None = None
    predictions: list[list[Any]] | None = None
    labels: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def ranked(self) -> bool:
        return self.scores is not None

    def select(self, ids: Sequence[str]) -> ItemScores:
        """The items of ``ids``, in that order."""
        position = {pid: i for i, pid in enumerate(self.ids)}
        take = [position[pid] for pid in ids]
        if self.scores is not None:
            return ItemScores(list(ids), scores=[self.scores[i] for i in take])
        return ItemScores(
            list(ids),
            gold=[self.gold[i] for i in take],
            predictions=[[p[i] for i in take] for p in self.predictions],
            labels=self.labels,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ids": list(self.ids)}
        for name in ("scores", "gold", "predictions", "labels"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemScores:
        return cls(
            ids=list(data["ids"]),
            scores=data.get("scores"),
            gold=data.get("gold"),
            predictions=data.get("predictions"),
            labels=data.get("labels"),
        )


@dataclass(frozen=True)
class TaskResult:
    """One task for one model.

    ``status``: ``ok`` (scored), ``skipped`` (the model does not support the task, ``reason`` says why)
    or ``failed`` (``reason``, ``traceback``). ``task_type`` and ``in_training`` come from the task
    (``results.json`` keeps them in its task list, not in each result).
    """

    task: str
    status: str
    task_type: str = ""
    in_training: bool = False
    main_metric: str | None = None
    main_score: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    missing: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    items: ItemScores | None = None
    cv_seeds: int | None = None
    reason: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def n_items(self) -> int:
        """Evaluation items with per-item data (queries or test papers); 0 without such data."""
        return len(self.items) if self.items is not None else 0

    @property
    def missing_counts(self) -> dict[str, int]:
        """The non-zero counts of missing things (documents, queries, pairs ...)."""
        return {k: v for k, v in self.missing.items() if isinstance(v, int) and not isinstance(v, bool) and v}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.ok:
            out |= {"main_metric": self.main_metric, "main_score": self.main_score, "counts": self.counts}
            out |= {"missing": self.missing, "metrics": self.metrics}
            if self.cv_seeds is not None:
                out["cv_seeds"] = self.cv_seeds
            if self.items is not None:
                out["items"] = self.items.to_json()
        else:
            out["reason"] = self.reason
            if self.traceback is not None:
                out["traceback"] = self.traceback
        out["timing"] = self.timing
        return _plain(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], task: Mapping[str, Any] | None = None) -> TaskResult:
        """``task``: the entry of the run's task list (name, type, in_training)."""
        task = task or {}
        return cls(
            task=str(task.get("name", "")),
            status=data["status"],
            task_type=str(task.get("type", "")),
            in_training=bool(task.get("in_training", False)),
            main_metric=data.get("main_metric"),
            main_score=_number(data.get("main_score")),
            metrics={k: _metric(v) for k, v in data.get("metrics", {}).items()},
            counts=dict(data.get("counts", {})),
            missing=dict(data.get("missing", {})),
            timing=dict(data.get("timing", {})),
            items=ItemScores.from_json(data["items"]) if "items" in data else None,
            cv_seeds=data.get("cv_seeds"),
            reason=data.get("reason"),
            traceback=data.get("traceback"),
        )


# ---- one model over the task list ---------------------------------------------------------------
@dataclass(frozen=True)
class Average:
    """The mean main score of ``n`` scored tasks out of the ``of`` tasks of a group (None: no task)."""

    score: float | None
    n: int
    of: int

    @property
    def complete(self) -> bool:
        return self.n == self.of

    def to_json(self) -> dict[str, Any]:
        return _plain({"score": self.score, "n": self.n, "of": self.of})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Average:
        score = data.get("score")
        return cls(None if score is None else float(score), int(data.get("n", 0)), int(data.get("of", 0)))


@dataclass(frozen=True)
class EmbeddingCounts:
    computed: int = 0
    from_cache: int = 0


@dataclass(frozen=True)
class ModelResult:
    """One model over the task list: ``status`` ``ok`` (loaded; see each task) or ``failed`` (not loaded)."""

    name: str
    status: str
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    averages: dict[str, Average] = field(default_factory=dict)
    spec: str | None = None
    reason: str | None = None
    info: dict[str, Any] | None = None
    embeddings: EmbeddingCounts | None = None
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def task(self, name: str) -> TaskResult | None:
        return self.tasks.get(name)

    def scored(self, name: str) -> TaskResult | None:
        """The task's result when it was scored, else None."""
        result = self.tasks.get(name)
        return result if result is not None and result.ok else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.spec is not None:
            out["spec"] = self.spec
        out["status"] = self.status
        if self.reason is not None:
            out["reason"] = self.reason
        if self.info is not None:
            out["info"] = self.info
        out["tasks"] = {name: result.to_json() for name, result in self.tasks.items()}
        out["averages"] = {group: avg.to_json() for group, avg in self.averages.items()}
        if self.embeddings is not None:
            out["embeddings"] = {"computed": self.embeddings.computed, "from_cache": self.embeddings.from_cache}
        if self.timing:
            out["timing"] = self.timing
        return _plain(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]] = ()) -> ModelResult:
        by_name = {t["name"]: t for t in tasks}
        embeddings = data.get("embeddings")
        return cls(
            name=data["name"],
            status=data["status"],
            tasks={
                name: TaskResult.from_json(result, by_name.get(name, {"name": name}))
                for name, result in data.get("tasks", {}).items()
            },
            averages={group: Average.from_json(a) for group, a in data.get("averages", {}).items()},
            spec=data.get("spec"),
            reason=data.get("reason"),
            info=data.get("info"),
            embeddings=EmbeddingCounts(**embeddings) if embeddings is not None else None,
            timing=dict(data.get("timing", {})),
        )


# ---- paired-bootstrap comparisons -----------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A difference (candidate - reference) with its bootstrap interval, over ``n`` tasks or items."""

    diff: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {"diff": self.diff, "low": self.low, "high": self.high, "half_width": self.half_width, "n": self.n}


@dataclass(frozen=True)
class TaskDifference:
    """A task's difference with its interval over the task's items, and both models' full-sample scores."""

    interval: Interval
    reference: float
    score: float

    def to_json(self) -> dict[str, Any]:
        return _plain(self.interval.to_dict() | {"reference": self.reference, "score": self.score})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskDifference:
        interval = Interval(data["diff"], data["low"], data["high"], data["n"])
        return cls(interval, _number(data.get("reference")), _number(data.get("score")))


@dataclass(frozen=True)
class GroupDifference:
    """A group average's difference (None where none of its ``of`` tasks could be compared)."""

    interval: Interval | None
    of: int

    @property
    def n(self) -> int:
        return self.interval.n if self.interval is not None else 0

    def to_json(self) -> dict[str, Any]:
        if self.interval is None:
            return {"diff": None, "low": None, "high": None, "n": 0, "of": self.of}
        return _plain(self.interval.to_dict() | {"of": self.of})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupDifference:
        if data.get("diff") is None:
            return cls(None, int(data.get("of", 0)))
        return cls(Interval(data["diff"], data["low"], data["high"], data["n"]), int(data.get("of", 0)))


@dataclass(frozen=True)
class ModelComparison:
    tasks: dict[str, TaskDifference]
    averages: dict[str, GroupDifference]

    def average(self, group: str) -> Interval | None:
        entry = self.averages.get(group)
        return entry.interval if entry is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": {n: d.to_json() for n, d in self.tasks.items()},
            "averages": {g: d.to_json() for g, d in self.averages.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelComparison:
        return cls(
            {n: TaskDifference.from_json(d) for n, d in data.get("tasks", {}).items()},
            {g: GroupDifference.from_json(d) for g, d in data.get("averages", {}).items()},
        )


@dataclass(frozen=True)
class Comparison:
    """Differences of each candidate vs ``reference`` (paired bootstrap, ``n_boot`` resamples)."""

    reference: str
    n_boot: int
    seed: int
    confidence: float
    models: dict[str, ModelComparison] = field(default_factory=dict)
    compute_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "confidence": self.confidence,
            "models": {name: m.to_json() for name, m in self.models.items()},
        }
        if self.compute_s is not None:
            out["compute_s"] = self.compute_s
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(
            reference=data["reference"],
            n_boot=int(data["n_boot"]),
            seed=int(data["seed"]),
            confidence=float(data["confidence"]),
            models={name: ModelComparison.from_json(m) for name, m in data.get("models", {}).items()},
            compute_s=data.get("compute_s"),
        )


@dataclass(frozen=True)
class TaskCorrelation:
    """Pearson r of the tasks' main scores across ``models`` (None where undefined)."""

    tasks: list[str]
    models: list[str]
    matrix: list[list[float | None]]

    def to_json(self) -> dict[str, Any]:
        return {"tasks": list(self.tasks), "models": list(self.models), "matrix": [list(r) for r in self.matrix]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskCorrelation:
        return cls(list(data["tasks"]), list(data["models"]), [list(r) for r in data["matrix"]])


# ---- the run ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteResult:
    """An evaluation run: every model on every task (``results.json``).

    ``tasks``: the task list as ``TaskSpec.to_dict()`` records (name, type, kind, main_metric,
    in_training, data paths ...).
    """

    tasks: list[dict[str, Any]]
    models: list[ModelResult]
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    cache_dir: str | None = None
    data_load_s: dict[str, float | None] = field(default_factory=dict)
    comparisons: Comparison | None = None
    task_correlation: TaskCorrelation | None = None
    total_s: float | None = None

    @property
    def ok_models(self) -> list[ModelResult]:
        return [m for m in self.models if m.ok]

    def model(self, name_or_spec: str) -> ModelResult | None:
        """The model named (or specified, as given to ``--model``) ``name_or_spec``."""
        for model in self.models:
            if name_or_spec in (model.name, model.spec):
                return model
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "created": self.created,
            "versions": self.versions,
            "device": self.device,
            "cache_dir": self.cache_dir,
            "tasks": self.tasks,
            "data_load_s": self.data_load_s,
            "models": [m.to_json() for m in self.models],
        }
        if self.comparisons is not None:
            out["comparisons"] = self.comparisons.to_json()
        if self.task_correlation is not None:
            out["task_correlation"] = self.task_correlation.to_json()
        if self.total_s is not None:
            out["total_s"] = self.total_s
        return _plain(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SuiteResult:
        tasks = [dict(t) for t in data.get("tasks", [])]
        comparisons, correlation = data.get("comparisons"), data.get("task_correlation")
        return cls(
            tasks=tasks,
            models=[ModelResult.from_json(m, tasks) for m in data.get("models", [])],
            created=data.get("created", ""),
            versions=dict(data.get("versions", {})),
            device=data.get("device", "auto"),
            cache_dir=data.get("cache_dir"),
            data_load_s=dict(data.get("data_load_s", {})),
            comparisons=Comparison.from_json(comparisons) if comparisons else None,
            task_correlation=TaskCorrelation.from_json(correlation) if correlation else None,
            total_s=data.get("total_s"),
        )
