"""Paired bootstrap confidence intervals for score differences between models.

Per task, the evaluation items (queries of proximity / search tasks, test papers of classification /
regression tasks) are resampled with replacement ``n_boot`` times; the resamples depend only on the
task name, the seed and the items, so every model sees the same resamples. On each resample the
task's main metric is recomputed for both models (supervised tasks: the mean over the CV seeds'
predictions), giving ``n_boot`` paired differences. A group average (out-of-training, a format,
overall) takes, per resample, the mean of its tasks' differences (the tasks are resampled
independently). The interval is the percentile interval (2.5 %, 97.5 % for 95 %).

The noise this measures is that of the finite evaluation sets; the grid-search noise is reduced by
the CV seeds, not captured here. Paper-reviewer matching tasks carry no per-item data and are left
out of the intervals (their count is reported).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .results import Comparison, GroupDifference, Interval, ItemScores, ModelComparison, SuiteResult, TaskDifference

N_BOOT = 1000
SEED = 20261201
CONFIDENCE = 0.95
GROUPS = ("classification", "regression", "proximity", "adhoc_search")


def task_seed(name: str, seed: int = SEED) -> int:
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` indices drawn with replacement (row 0 is not special)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each item is drawn in each resample: ``(n_boot, n)`` float64."""
    rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
    counts = np.zeros((indices.shape[0], n), dtype=np.float64)
    np.add.at(counts, (rows, indices.ravel()), 1.0)
    return counts


# ---- metrics on weighted resamples ----------------------------------------------------------------
def _f1_from_counts(tp: np.ndarray, gold: np.ndarray, pred: np.ndarray, average: str, all_labels: bool) -> np.ndarray:
    """Per-resample F1 from per-class counts ``(n_boot, C)``; as scikit-learn with zero_division=0:
    single label: macro over labels present in gold or prediction; multi-label: over all labels."""
    if average == "micro":
        denom = gold.sum(axis=1) + pred.sum(axis=1)
        return np.where(denom > 0, 2 * tp.sum(axis=1) / np.maximum(denom, 1e-300), 0.0)
    denom = gold + pred
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-300), 0.0)
    if all_labels:
        return f1.mean(axis=1)
    present = denom > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _indicators(values: Sequence[Any], labels: list[str], multi: bool) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(values), len(labels)), dtype=np.float64)
    for row, value in enumerate(values):
        for label in value if multi else [value]:
            out[row, index[str(label)]] = 1.0
    return out


def classification_replicates(
    metric: str, gold: Sequence[Any], predictions: Sequence[Sequence[Any]], counts: np.ndarray, labels=None
) -> np.ndarray:
    """``metric`` (x 100) per resample, mean over the seeds' predictions; ``counts``: ``(n_boot, n)``."""
    multi = labels is not None
    base, _, average = metric.partition("_")
    if base not in ("f1", "accuracy") or (base == "f1" and average not in ("macro", "micro")):
        return _generic_replicates(metric, gold, predictions, counts, multi)
    if multi:
        names = [str(x) for x in labels]
    else:
        names = sorted({str(v) for v in gold} | {str(v) for p in predictions for v in p})
    g = _indicators([v if multi else str(v) for v in gold], names, multi)
    n = counts.sum(axis=1)
    out = np.zeros(counts.shape[0])
    for pred in predictions:
        p = _indicators([v if multi else str(v) for v in pred], names, multi)
        if base == "accuracy":
            exact = np.all(g == p, axis=1).astype(np.float64)
            out += counts @ exact / n
        else:
            out += _f1_from_counts(counts @ (g * p), counts @ g, counts @ p, average, all_labels=multi)
    return 100.0 * out / len(predictions)


def _generic_replicates(metric: str, gold, predictions, counts: np.ndarray, multi: bool) -> np.ndarray:
    """Any other classification metric through scikit-learn, resample by resample (slower)."""
    from .metrics import classification_metric

    indices = [np.repeat(np.arange(counts.shape[1]), row.astype(int)) for row in counts]
    if multi:
        from sklearn.preprocessing import MultiLabelBinarizer

        binarizer = MultiLabelBinarizer().fit(list(gold) + [v for p in predictions for v in p])
        gold = binarizer.transform(gold)
        predictions = [binarizer.transform(p) for p in predictions]
    gold = np.asarray(gold)
    preds = [np.asarray(p) for p in predictions]
    return np.array([np.mean([classification_metric(metric, gold[i], p[i]) for p in preds]) for i in indices])


def regression_replicates(
    metric: str, gold: Sequence[float], predictions: Sequence[Sequence[float]], indices: np.ndarray
) -> np.ndarray:
    from .metrics import regression_metric

    y = np.asarray(gold, dtype=float)
    preds = [np.asarray(p, dtype=float) for p in predictions]
    return np.array([np.mean([regression_metric(metric, y[i], p[i]) for p in preds]) for i in indices])


def ranking_replicates(scores: Sequence[float], counts: np.ndarray) -> np.ndarray:
    """Mean per-query score per resample (trec_eval's mean over queries)."""
    return counts @ np.asarray(scores, dtype=np.float64) / counts.sum(axis=1)


# ---- per task ---------------------------------------------------------------------------------------------
def task_replicates(
    task: Mapping[str, Any], items_by_model: Mapping[str, ItemScores], n_boot: int = N_BOOT, seed: int = SEED
) -> dict[str, tuple[float, np.ndarray]]:
    """``{model: (full-sample score, n_boot resampled scores)}`` on the items all models share, with the
    same resamples for every model. ``task``: an entry of the run's task list (name, type, main_metric)."""
    if not items_by_model:
        return {}
    common = set.intersection(*(set(i.ids) for i in items_by_model.values()))
    first = next(iter(items_by_model.values()))
    ids = [pid for pid in first.ids if pid in common]
    if not ids:
        return {}
    indices = resample_indices(len(ids), n_boot, task_seed(task["name"], seed))
    identity = np.arange(len(ids))[None, :]
    metric = task["main_metric"]
    out: dict[str, tuple[float, np.ndarray]] = {}
    for model, raw in items_by_model.items():
        items = raw.select(ids)
        if items.ranked:
            full = ranking_replicates(items.scores, np.ones((1, len(ids))))
            reps = ranking_replicates(items.scores, _counts(indices, len(ids)))
        elif task["type"] == "classification":
            full = classification_replicates(
                metric, items.gold, items.predictions, np.ones((1, len(ids))), items.labels
            )
            reps = classification_replicates(
                metric, items.gold, items.predictions, _counts(indices, len(ids)), items.labels
            )
        else:
            full = regression_replicates(metric, items.gold, items.predictions, identity)
            reps = regression_replicates(metric, items.gold, items.predictions, indices)
        out[model] = (float(full[0]), reps)
    return out


def interval(point: float, replicates: np.ndarray, n: int, confidence: float = CONFIDENCE) -> Interval:
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(replicates, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high), n)


def group_members(tasks: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Task names per average: in/out-of-training, overall, and per format out-of-training
    (``out_of_training/classification`` ...) and over all tasks (``classification`` ...)."""
    groups: dict[str, list[str]] = {"in_training": [], "out_of_training": [], "overall": []}
    for g in GROUPS:
        groups[g] = []
        groups[f"out_of_training/{g}"] = []
    for task in tasks:
        fmt = "proximity" if task["kind"] == "reviewer_matching" else task["type"]
        groups["overall"].append(task["name"])
        groups[fmt].append(task["name"])
        if task["in_training"]:
            groups["in_training"].append(task["name"])
        else:
            groups["out_of_training"].append(task["name"])
            groups[f"out_of_training/{fmt}"].append(task["name"])
    return groups


def compare_models(
    report: SuiteResult,
    reference: str,
    candidates: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """Paired-bootstrap differences of ``candidates`` (default: all other models) vs ``reference`` for
    every task and average of a run (models named by ``name`` or ``spec``)."""
    ref = report.model(reference)
    if ref is None:
        raise ValueError(f"no model {reference!r} in the results; they have {[m.name for m in report.models]}")
    others = [report.model(c) for c in candidates] if candidates else [m for m in report.models if m is not ref]
    models: dict[str, ModelComparison] = {}
    groups = group_members(report.tasks)
    for cand in others:
        if cand is None or not cand.ok or not ref.ok:
            continue
        per_task: dict[str, TaskDifference] = {}
        replicates: dict[str, np.ndarray] = {}
        for task in report.tasks:
            a, b = ref.scored(task["name"]), cand.scored(task["name"])
            if a is None or b is None or a.items is None or b.items is None:
                continue
            scored = task_replicates(task, {"ref": a.items, "cand": b.items}, n_boot, seed)
            if not scored:
                continue
            (ref_full, ref_reps), (cand_full, cand_reps) = scored["ref"], scored["cand"]
            diff = cand_reps - ref_reps
            replicates[task["name"]] = diff
            per_task[task["name"]] = TaskDifference(
                interval(cand_full - ref_full, diff, a.n_items, confidence), ref_full, cand_full
            )
        averages: dict[str, GroupDifference] = {}
        for group, names in groups.items():
            present = [n for n in names if n in replicates]
            if not present:
                averages[group] = GroupDifference(None, len(names))
                continue
            reps = np.mean([replicates[n] for n in present], axis=0)
            point = float(np.mean([per_task[n].interval.diff for n in present]))
            averages[group] = GroupDifference(interval(point, reps, len(present), confidence), len(names))
        models[cand.name] = ModelComparison(per_task, averages)
    return Comparison(reference=ref.name, n_boot=n_boot, seed=seed, confidence=confidence, models=models)
