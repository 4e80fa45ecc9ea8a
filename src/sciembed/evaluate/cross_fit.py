"""Cross-fitted supervised tasks: every labelled paper is a test item once.

A task with ``cross_fit`` = k pools its train and test papers, splits them into k folds (seeded;
stratified by label for single-label classification) and, for each fold, fits the task's usual
classifier or regressor (the same grid search, the same CV seeds) on the other folds and predicts
that fold. The metric is computed over all the pooled predictions, once per CV seed, and averaged.
With k = 3 each model trains on two thirds of the papers, as a fixed two-thirds / one-third split
would, but every paper is scored: three times the items of that split's test set, so the paired
bootstrap's interval narrows by about sqrt(3) (the small SciRepEval samples: 68 -> 205 test items).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .classification import evaluate_classification
from .metrics import classification_metric, regression_metric
from .regression import evaluate_regression

SEED = 42


def fold_indices(labels: Sequence[Any], folds: int, stratified: bool, seed: int = SEED) -> list[np.ndarray]:
    """The test indices of each of ``folds`` folds over ``len(labels)`` items (each item in exactly one)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(labels)
    if n < folds:
        raise ValueError(f"cross_fit {folds} needs at least {folds} labelled papers, got {n}")
    index = np.zeros((n, 1))
    y = np.asarray([str(v) for v in labels])
    if stratified and np.unique(y, return_counts=True)[1].max() >= folds:  # else plain folds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only 1 member"
            return [test for _, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(index, y)]
    return [test for _, test in KFold(folds, shuffle=True, random_state=seed).split(index)]


def cross_fitted(
    kind: str,
    x: np.ndarray,
    labels: Sequence[Any],
    metrics: Sequence[str],
    folds: int,
    multi_label: bool = False,
    n_jobs: int = 1,
    cv_seeds: int = 0,
    items: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Metrics of ``kind`` (``classification`` / ``regression``) over all ``labels``, each item
    predicted by the model fitted on the other folds; ``items`` receives ``gold`` and each seed's
    ``predictions`` in the items' order (and ``labels`` for multi-label), as the split tasks do."""
    stratified = kind == "classification" and not multi_label
    evaluate = _fold_evaluator(kind, multi_label, n_jobs, cv_seeds)
    predictions: list[list[Any]] | None = None
    for test in fold_indices(labels, folds, stratified):
        train = np.setdiff1d(np.arange(len(labels)), test)
        fold_items: dict[str, Any] = {}
        evaluate(x[train], [labels[i] for i in train], x[test], [labels[i] for i in test], metrics, fold_items)
        if predictions is None:
            predictions = [[None] * len(labels) for _ in fold_items["predictions"]]
        for seed_run, fold_run in zip(predictions, fold_items["predictions"], strict=True):
            for i, value in zip(test, fold_run, strict=True):
                seed_run[i] = value
    assert predictions is not None
    gold = [_gold(kind, multi_label, v) for v in labels]
    names = None
    if multi_label:  # the label set of the multi-label metrics, as the split tasks record it
        names = sorted({str(v) for row in gold + [p for run in predictions for p in run] for v in row})
    results = {m: float(np.mean([_metric(kind, m, gold, run, names) for run in predictions])) for m in metrics}
    if items is not None:
        items["gold"] = gold
        items["predictions"] = predictions
        if names is not None:
            items["labels"] = names
    return results


def _fold_evaluator(kind: str, multi_label: bool, n_jobs: int, cv_seeds: int) -> Callable[..., Any]:
    if kind == "classification":
        return lambda xt, yt, xs, ys, metrics, items: evaluate_classification(
            xt, yt, xs, ys, metrics, multi_label, (), n_jobs=n_jobs, cv_seeds=cv_seeds, items=items
        )
    if kind == "regression":
        return lambda xt, yt, xs, ys, metrics, items: evaluate_regression(
            xt, yt, xs, ys, metrics, n_jobs=n_jobs, cv_seeds=cv_seeds, items=items
        )
    raise ValueError(f"cross_fit applies to classification and regression tasks, not {kind!r}")


def _metric(kind: str, metric: str, gold: list[Any], predicted: list[Any], names: list[str] | None) -> float:
    if kind == "regression":
        return regression_metric(metric, np.asarray(gold, dtype=float), np.asarray(predicted, dtype=float))
    if names is None:
        return classification_metric(metric, np.asarray(gold), np.asarray(predicted))
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer(classes=names).fit([names])
    gold_rows, predicted_rows = ([[str(v) for v in row] for row in rows] for rows in (gold, predicted))
    return classification_metric(metric, binarizer.transform(gold_rows), binarizer.transform(predicted_rows))


def _gold(kind: str, multi_label: bool, value: Any) -> Any:
    if kind == "regression":
        return float(value)
    if multi_label:
        return list(value)
    return value.item() if isinstance(value, np.generic) else value
