"""Run task lists for models: load each task's data once, embed through the cache, score, average, report.

``run_benchmark(models, tasks, output_dir)`` returns a ``SuiteResult`` (``results.py``) and writes
``results.json``, ``results.md`` (the models side by side) and ``results.png``. With two or more
models it adds paired-bootstrap intervals of every difference vs the reference model (the first, or
``reference``) and, with three or more, the task-correlation heatmap ``task_correlation.png``. A
task whose data cannot be loaded, or that fails for a model, is recorded as failed with its reason;
the other tasks still run.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Paper
from .baselines import Ranker, model_kind, resolve_model, supports
from .bootstrap import N_BOOT, compare_models
from .cache import EmbeddingCache
from .classification import evaluate_classification
from .compare_report import comparison_markdown, correlation_heatmap, task_correlation
from .cross_fit import cross_fitted
from .loaders import Documents, TaskDataError, load_documents, load_labels, load_qrels, load_reviewers
from .metrics import trec_per_query
from .registry import TaskSpec
from .regression import evaluate_regression
from .results import (
    FAILED,
    OK,
    SKIPPED,
    Average,
    EmbeddingCounts,
    ItemScores,
    ModelResult,
    SuiteResult,
    TaskResult,
)
from .retrieval import evaluate_run, missing_in_run, rank_by_distance
from .reviewer import evaluate_reviewer_matching, rank_reviewers

FORMAT_GROUPS = ("classification", "regression", "proximity", "adhoc_search")
GROUP_OF_KIND = {"reviewer_matching": "proximity"}


# ---- task data ----------------------------------------------------------------------------------------
@dataclass
class TaskData:
    docs: Documents
    labels: dict[str, list[tuple[str, Any]]] | None = None
    qrels: dict[str, dict[str, int]] | None = None
    hard_qrels: dict[str, dict[str, int]] | None = None
    soft_qrels: dict[str, dict[str, int]] | None = None
    reviewers: dict[str, list[str]] | None = None
    load_s: float = 0.0


@dataclass
class DataMemo:
    """Data shared between tasks of one run (tasks naming the same ``meta`` load it once)."""

    documents: dict[str, Documents] = field(default_factory=dict)

    def docs(self, task: TaskSpec) -> Documents:
        key = task.meta.key()
        if key not in self.documents:
            self.documents[key] = load_documents(task.meta)
        return self.documents[key]


def load_task_data(task: TaskSpec, memo: DataMemo | None = None) -> TaskData:
    """Everything a task needs besides embeddings; raises :class:`TaskDataError` (or OSError/ValueError)."""
    start = time.perf_counter()
    memo = memo or DataMemo()
    data = TaskData(docs=memo.docs(task))
    kind = task.kind
    if kind in ("classification", "regression"):
        data.labels = load_labels(task.test, task.multi_label)
        if kind == "regression":
            try:
                data.labels = {s: [(p, float(v)) for p, v in rows] for s, rows in data.labels.items()}
            except (TypeError, ValueError) as exc:
                raise TaskDataError(f"{task.test}: a regression label is not a number ({exc})") from None
    elif kind == "reviewer_matching":
        data.hard_qrels = load_qrels(task.test, "test_hard_qrel.jsonl")
        data.soft_qrels = load_qrels(task.test, "test_soft_qrel.jsonl")
        data.reviewers = load_reviewers(task.reviewers)
    else:
        data.qrels = load_qrels(task.test) if task.test is not None else data.docs.inline_qrels
        if not data.qrels:
            raise TaskDataError(f"{task.name}: no relevance judgements (no test_qrel.jsonl and no candidate scores)")
    data.load_s = time.perf_counter() - start
    return data


# ---- embedding ----------------------------------------------------------------------------------------
class Embedder:
    """Embeds documents for one model through the on-disk cache (or an in-memory one)."""

    def __init__(self, model: Any, cache_dir: str | Path | None):
        self.model = model
        self.cache_dir = cache_dir
        self._caches: dict[str, EmbeddingCache] = {}
        self._memory: dict[tuple[str, str], np.ndarray] = {}
        self.computed = 0
        self.reused = 0

    def _cache(self, adapter: str) -> EmbeddingCache | None:
        if self.cache_dir is None or not getattr(self.model, "cacheable", False):
            return None
        if adapter not in self._caches:
            self._caches[adapter] = EmbeddingCache(
                self.cache_dir, self.model.fingerprint, adapter, getattr(self.model, "dimension", None)
            )
        return self._caches[adapter]

    def embed(
        self, items: Mapping[str, Paper | str], format: str, fields: Sequence[str] | None
    ) -> dict[str, np.ndarray]:
        """``{id: vector}`` for every item."""
        if not items:
            return {}
        ids = list(items)
        papers = [items[i] for i in ids]
        texts = self.model.texts(papers, fields)
        adapter = self.model.adapter_key(format)
        cache = self._cache(adapter)
        if cache is not None:
            vectors, computed = cache.get_or_compute(
                texts, lambda pos: self.model.encode([papers[i] for i in pos], format=format, fields=fields)
            )
        else:
            # in-memory reuse within the run, keyed by text like the disk cache
            todo = [i for i, t in enumerate(texts) if (adapter, t) not in self._memory]
            first: dict[str, int] = {}
            for i in todo:
                first.setdefault(texts[i], i)
            positions = list(first.values())
            if positions:
                new = self.model.encode([papers[i] for i in positions], format=format, fields=fields)
                for i, vector in zip(positions, new, strict=True):
                    self._memory[(adapter, texts[i])] = np.asarray(vector, dtype=np.float32)
            vectors = np.stack([self._memory[(adapter, t)] for t in texts])
            computed = len(positions)
        self.computed += computed
        self.reused += len(texts) - computed
        return {i: vectors[row] for row, i in enumerate(ids)}


# ---- evaluating one task --------------------------------------------------------------------------
def _split_present(rows: list[tuple[str, Any]], docs: Documents) -> tuple[list[str], list[Any], int]:
    ids, labels, missing = [], [], 0
    for pid, label in rows:
        if pid in docs.docs:
            ids.append(pid)
            labels.append(label)
        else:
            missing += 1
    return ids, labels, missing


def _supervised(task: TaskSpec, data: TaskData, model: Any, embedder: Embedder, n_jobs: int) -> TaskResult:
    train_ids, train_y, miss_train = _split_present(data.labels["train"], data.docs)
    test_ids, test_y, miss_test = _split_present(data.labels["test"], data.docs)
    if not train_ids or not test_ids:
        raise ValueError(f"no documents left to evaluate (missing: train {miss_train}, test {miss_test})")
    t0 = time.perf_counter()
    needed = {pid: data.docs.docs[pid] for pid in dict.fromkeys(train_ids + test_ids)}
    vectors = embedder.embed(needed, task.format, task.fields)
    t1 = time.perf_counter()
    x_train = np.stack([vectors[p] for p in train_ids])
    x_test = np.stack([vectors[p] for p in test_ids])
    items: dict[str, Any] = {"ids": test_ids}
    counts = {"train": len(train_ids), "test": len(test_ids)}
    if task.cross_fit:  # every labelled paper is a test item once
        if both := set(train_ids) & set(test_ids):
            raise ValueError(f"cross_fit needs disjoint splits: {len(both)} paper(s) in both, e.g. {min(both)!r}")
        items["ids"] = train_ids + test_ids
        x_all, y_all = np.concatenate([x_train, x_test]), train_y + test_y
        metrics = cross_fitted(
            task.type, x_all, y_all, task.metrics, task.cross_fit, task.multi_label, n_jobs, task.cv_seeds, items
        )
        counts = {"items": len(y_all), "folds": task.cross_fit}
    elif task.type == "classification":
        metrics = evaluate_classification(
            x_train,
            train_y,
            x_test,
            test_y,
            task.metrics,
            task.multi_label,
            task.few_shot,
            n_jobs=n_jobs,
            cv_seeds=task.cv_seeds,
            items=items,
        )
    else:
        metrics = evaluate_regression(
            x_train, train_y, x_test, test_y, task.metrics, n_jobs=n_jobs, cv_seeds=task.cv_seeds, items=items
        )
    return _scored(
        task,
        data,
        metrics,
        counts=counts,
        missing={"train": miss_train, "test": miss_test},
        timing={"embed_s": t1 - t0, "score_s": time.perf_counter() - t1},
        items=ItemScores.from_json(items),
        cv_seeds=task.cv_seeds,
    )


def _retrieval(task: TaskSpec, data: TaskData, model: Any, embedder: Embedder) -> TaskResult:
    qrels = data.qrels
    candidates = {q: list(c) for q, c in qrels.items()}
    queries = {q: data.docs.query(q) for q in candidates}
    missing_queries = sorted(q for q, v in queries.items() if v is None)
    queries = {q: v for q, v in queries.items() if v is not None}
    cand_ids = {c for cands in candidates.values() for c in cands}
    missing_docs = sorted(c for c in cand_ids if c not in data.docs.docs)
    docs = {c: data.docs.docs[c] for c in sorted(cand_ids) if c in data.docs.docs}
    t0 = time.perf_counter()
    if isinstance(model, Ranker):
        run = model.score(queries, docs, candidates, task.fields)
    else:
        qvec = embedder.embed(queries, task.query_format, task.fields)
        dvec = embedder.embed(docs, task.format, task.fields)
        run = rank_by_distance(qvec, dvec, candidates)
    t1 = time.perf_counter()
    metrics = evaluate_run(qrels, run, task.metrics)
    lost = missing_in_run(candidates, run)
    per_query = trec_per_query(qrels, run, task.main_metric)
    return _scored(
        task,
        data,
        metrics,
        counts={
            "queries": len(candidates),
            "candidates": len(cand_ids),
            "pairs": sum(len(c) for c in candidates.values()),
            "evaluated_queries": len(run),
        },
        missing={
            "queries": len(missing_queries),
            "candidates": len(missing_docs),
            "queries_not_evaluated": lost["queries"],
            "pairs_not_ranked": lost["pairs"],
        },
        timing={"embed_s": t1 - t0, "score_s": time.perf_counter() - t1},
        items=ItemScores(list(per_query), scores=list(per_query.values())),
    )


def _reviewer(task: TaskSpec, data: TaskData, model: Any, embedder: Embedder) -> TaskResult:
    candidates: dict[str, list[str]] = {}
    for qrels in (data.hard_qrels, data.soft_qrels):
        for pid, rids in qrels.items():
            candidates.setdefault(pid, [])
            candidates[pid] += [r for r in rids if r not in candidates[pid]]
    paper_ids = set(candidates)
    reviewer_doc_ids = {p for papers in data.reviewers.values() for p in papers}
    all_ids = paper_ids | reviewer_doc_ids
    missing = sorted(p for p in all_ids if p not in data.docs.docs)
    unknown_reviewers = {r for rids in candidates.values() for r in rids if r not in data.reviewers}
    t0 = time.perf_counter()
    vectors = embedder.embed(
        {p: data.docs.docs[p] for p in sorted(all_ids) if p in data.docs.docs}, task.format, task.fields
    )
    t1 = time.perf_counter()
    run = rank_reviewers(vectors, vectors, data.reviewers, candidates)
    metrics = evaluate_reviewer_matching(data.hard_qrels, data.soft_qrels, run, task.metrics)
    for m in task.metrics:  # the task's own metric names: mean of hard and soft
        metrics[m] = (metrics[f"hard_{m}"] + metrics[f"soft_{m}"]) / 2
    return _scored(
        task,
        data,
        metrics,
        counts={"papers": len(paper_ids), "reviewers": len(data.reviewers), "documents": len(all_ids)},
        missing={
            "documents": len(missing),
            "papers": len(paper_ids - set(vectors)),
            "unknown_reviewers": len(unknown_reviewers),
        },
        timing={"embed_s": t1 - t0, "score_s": time.perf_counter() - t1},
    )


def _scored(
    task: TaskSpec, data: TaskData, metrics: dict[str, Any], missing: dict[str, Any], **fields: Any
) -> TaskResult:
    missing = dict(missing, skipped_records=data.docs.skipped)
    if data.docs.skipped_examples:
        missing["skipped_examples"] = data.docs.skipped_examples
    return TaskResult(
        **_task_fields(task),
        status=OK,
        main_metric=task.main_metric,
        main_score=metrics.get(task.main_metric, float("nan")),
        metrics=metrics,
        missing=missing,
        **fields,
    )


def _task_fields(task: TaskSpec) -> dict[str, Any]:
    return {"task": task.name, "task_type": task.type, "in_training": task.in_training}


def evaluate_task(task: TaskSpec, data: TaskData, model: Any, embedder: Embedder, n_jobs: int = 1) -> TaskResult:
    """One task for one model: a scored :class:`TaskResult`, or a skipped one (the model does not support it)."""
    reason = supports(model, task.kind)
    if reason is not None:
        return TaskResult(**_task_fields(task), status=SKIPPED, reason=reason)
    if task.kind in ("classification", "regression"):
        return _supervised(task, data, model, embedder, n_jobs)
    if task.kind == "reviewer_matching":
        return _reviewer(task, data, model, embedder)
    return _retrieval(task, data, model, embedder)


def _failed(task: TaskSpec, reason: str, traceback_text: str | None = None) -> TaskResult:
    return TaskResult(**_task_fields(task), status=FAILED, reason=reason, traceback=traceback_text)


# ---- averages -------------------------------------------------------------------------------------
def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else None


def averages(tasks: Sequence[TaskSpec], results: Mapping[str, TaskResult]) -> dict[str, Average]:
    """SciRepEval-style averages of the main scores: per format, in-training, out-of-training, overall.

    Each average says how many tasks it covers (``n``) out of how many the task list has (``of``).
    """
    groups: dict[str, list[TaskSpec]] = {g: [] for g in FORMAT_GROUPS}
    for task in tasks:
        groups[GROUP_OF_KIND.get(task.kind, task.kind)].append(task)
    groups["in_training"] = [t for t in tasks if t.in_training]
    groups["out_of_training"] = [t for t in tasks if not t.in_training]
    groups["overall"] = list(tasks)
    out: dict[str, Average] = {}
    for name, members in groups.items():
        scores = [results[t.name].main_score for t in members if t.name in results and results[t.name].ok]
        out[name] = Average(_mean(scores), len(scores), len(members))
    return out


# ---- the run --------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for module in ("sciembed", "numpy", "scipy", "sklearn", "torch", "transformers", "pytrec_eval", "bm25s"):
        try:
            mod = __import__(module)
            out[module] = str(getattr(mod, "__version__", "unknown"))
        except Exception:  # noqa: BLE001  a missing optional package is just not listed
            continue
    return out


def _log(console: Any, text: str) -> None:
    if console is not None:
        console.print(text, soft_wrap=True)


def run_benchmark(
    models: Sequence[Any],
    tasks: Sequence[TaskSpec],
    output_dir: str | Path | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = ".cache/embeddings",
    batch_size: int = 32,
    n_jobs: int = 1,
    console: Any = None,
    model_loader: Callable[..., Any] = resolve_model,
    reference: str | None = None,
    n_boot: int = N_BOOT,
) -> SuiteResult:
    """Evaluate every model on every task; returns the :class:`SuiteResult` and writes the reports.

    ``models``: names (``bm25``, ``random``, ``default``, a folder, a hub name) or model objects.
    """
    if reference is not None:
        names = [spec if isinstance(spec, str) else getattr(spec, "name", str(spec)) for spec in models]
        if reference not in names:
            raise ValueError(f"reference {reference!r} is not one of the evaluated models {names}")
    start = time.perf_counter()
    memo = DataMemo()
    task_data: dict[str, TaskData | str] = {}
    for task in tasks:
        try:
            task_data[task.name] = load_task_data(task, memo)
        except (TaskDataError, OSError, ValueError, KeyError) as exc:
            task_data[task.name] = f"{type(exc).__name__}: {exc}"
            _log(console, f"[red]task {task.name!r}: data could not be loaded[/red] ({exc})")
    model_results: list[ModelResult] = []
    for spec in models:
        t0 = time.perf_counter()
        try:
            model = model_loader(spec, device=device, batch_size=batch_size)
        except Exception as exc:  # noqa: BLE001  report and go on with the next model
            reason = f"{type(exc).__name__}: {exc}"
            model_results.append(ModelResult(str(spec), FAILED, reason=reason, averages=averages(tasks, {})))
            _log(console, f"[red]model {spec!r} could not be loaded[/red]: {exc}")
            continue
        load_s = time.perf_counter() - t0
        embedder = Embedder(model, cache_dir)
        results: dict[str, TaskResult] = {}
        _log(console, f"[bold]{model.name}[/bold] ({model_kind(model)})")
        for task in tasks:
            data = task_data[task.name]
            task_start = time.perf_counter()
            if isinstance(data, str):
                result = _failed(task, f"data could not be loaded: {data}")
            else:
                try:
                    result = evaluate_task(task, data, model, embedder, n_jobs=n_jobs)
                except Exception as exc:  # noqa: BLE001  one failing task must not stop the others
                    result = _failed(task, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3))
            results[task.name] = replace(result, timing={**result.timing, "total_s": time.perf_counter() - task_start})
            _log(console, "  " + _task_line(results[task.name]))
        model_results.append(
            ModelResult(
                name=model.name,
                spec=str(spec),
                status=OK,
                info=model.info(),
                tasks=results,
                averages=averages(tasks, results),
                embeddings=EmbeddingCounts(computed=embedder.computed, from_cache=embedder.reused),
                timing={"load_s": load_s, "total_s": time.perf_counter() - t0},
            )
        )
    report = SuiteResult(
        tasks=[t.to_dict() for t in tasks],
        models=model_results,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=versions(),
        device=device or "auto",
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        data_load_s={
            t.name: (d.load_s if isinstance(d, TaskData) else None) for t, d in ((t, task_data[t.name]) for t in tasks)
        },
    )
    comparisons = None
    if len(report.ok_models) >= 2 and n_boot > 0:
        t0 = time.perf_counter()
        comparisons = compare_models(report, reference or report.ok_models[0].name, n_boot=n_boot)
        comparisons = replace(comparisons, compute_s=time.perf_counter() - t0)
    report = replace(report, comparisons=comparisons, task_correlation=task_correlation(report))
    report = replace(report, total_s=time.perf_counter() - start)
    if output_dir is not None:
        write_reports(report, output_dir)
    return report


def _task_line(result: TaskResult) -> str:
    if not result.ok:
        return f"{result.task}: {result.status} ({result.reason or ''})"
    missing = result.missing_counts
    extra = f" missing {missing}" if missing else ""
    return (
        f"{result.task}: {result.main_metric} {result.main_score:.2f} ({result.timing.get('total_s', 0):.1f}s){extra}"
    )


# ---- reports --------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2f}"


def markdown_table(report: SuiteResult) -> str:
    """The models side by side: one row per task (main metric), then the averages."""
    models = report.models
    header = "| task | format | train | metric | " + " | ".join(m.name for m in models) + " |"
    lines = [header, "|" + "---|" * (4 + len(models))]
    notes: list[str] = []
    for task in report.tasks:
        cells = []
        for model in models:
            result = model.task(task["name"])
            if result is not None and result.ok:
                cell = _fmt(result.main_score)
                missing = result.missing_counts
                if missing:
                    cell += "*"
                    notes.append(f"{model.name} / {task['name']}: missing {missing}")
            elif result is not None and result.status == SKIPPED:
                cell = "n/a"
            else:
                cell = "failed"
                reason = result.reason if result is not None and result.reason else (model.reason or "")
                notes.append(f"{model.name} / {task['name']}: {reason}")
            cells.append(cell)
        kind = task["kind"] if task["kind"] != "adhoc_search" else "search"
        mark = "in" if task["in_training"] else "out"
        lines.append(f"| {task['name']} | {kind} | {mark} | {task['main_metric']} | " + " | ".join(cells) + " |")
    labels = {g: f"**avg {g.replace('_', ' ')}**" for g in FORMAT_GROUPS}
    labels.update(
        {
            "in_training": "**avg in-training**",
            "out_of_training": "**avg out-of-training**",
            "overall": "**avg overall**",
        }
    )
    for group, label in labels.items():
        cells = []
        for model in models:
            avg = model.averages.get(group)
            score = avg.score if avg is not None else None
            cell = _fmt(score)
            if score is not None and not avg.complete:
                cell += f" ({avg.n}/{avg.of})"
            cells.append(cell)
        lines.append(f"| {label} | | | | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    text += (
        "\n`n/a`: the model does not support the task (BM25 ranks proximity and search candidates only); "
        "averages marked (n/m) cover n of m tasks. `*`: some documents were missing (see notes).\n"
    )
    crossed = [f"{t['name']} ({t['cross_fit']} folds)" for t in report.tasks if t.get("cross_fit")]
    if crossed:
        text += "Cross-fitted (every labelled paper scored once, by the model of the other folds): "
        text += ", ".join(crossed) + ".\n"
    return text


def report_markdown(report: SuiteResult) -> str:
    """``results.md``: the scores table, the differences with intervals, the correlation heatmap's link."""
    text = markdown_table(report)
    if report.comparisons is not None:
        text += "\n" + comparison_markdown(report.comparisons, report.tasks)
    if report.task_correlation is not None:
        text += (
            f"\n![task correlation](task_correlation.png)\n\nTask correlation: Pearson r of the main scores across "
            f"the {len(report.task_correlation.models)} evaluated models.\n"
        )
    elif len(report.models) > 1:
        text += "\nTask correlation heatmap: needs three or more evaluated models.\n"
    return text


def bar_chart(report: SuiteResult, path: str | Path) -> None:
    """A PNG: main score per task and averages, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report.models
    rows = [t["name"] for t in report.tasks] + ["avg in-training", "avg out-of-training", "avg overall"]
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(rows) * max(1, len(models)) / 1.5), 5))
    x = np.arange(len(rows))
    for i, model in enumerate(models):
        values = []
        for task in report.tasks:
            result = model.scored(task["name"])
            values.append(result.main_score if result is not None else np.nan)
        for group in ("in_training", "out_of_training", "overall"):
            avg = model.averages.get(group)
            values.append(np.nan if avg is None or avg.score is None else avg.score)
        ax.bar(x + (i - (len(models) - 1) / 2) * width, np.asarray(values, dtype=float), width, label=model.name)
    ax.set_xticks(x)
    ax.set_xticklabels(rows, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("main metric (x 100)")
    ax.set_title("sciembed evaluate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_results_json(path: str | Path) -> dict[str, Any]:
    """The JSON of a ``results.json`` (``.gz``: gzip-compressed, as results are kept in benchmarks/results/)."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return json.loads(raw)


def read_results(path: str | Path) -> SuiteResult:
    """A ``results.json`` (of this or an older version; ``.gz``: gzip-compressed) as a :class:`SuiteResult`."""
    return SuiteResult.from_json(read_results_json(path))


def write_reports(report: SuiteResult, output_dir: str | Path) -> dict[str, Path]:
    """``results.json``, ``results.md`` and ``results.png`` in ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_dir / "results.json",
        "markdown": output_dir / "results.md",
        "png": output_dir / "results.png",
    }
    text = report_markdown(report)
    try:
        import matplotlib  # noqa: F401  the charts need it; a machine without it still gets the tables
    except ImportError:
        paths.pop("png")
        text += "\n(no charts: matplotlib is not installed)\n"
    else:
        bar_chart(report, paths["png"])
        if report.task_correlation is not None:
            paths["correlation"] = correlation_heatmap(report.task_correlation, output_dir / "task_correlation.png")
    tmp = paths["json"].with_name(".results.json.tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=2, default=_json_default) + "\n")
    os.replace(tmp, paths["json"])
    paths["markdown"].write_text(text)
    return paths
