"""Regression as SciRepEval does it: a linear SVR on frozen embeddings, 3-fold grid over C in
logspace(-4, 2, 7), scikit-learn's default scoring; the metric is Kendall's tau (x 100). With
``cv_seeds`` = n > 0 the grid search runs on shuffled folds of seeds 0 .. n-1, metrics averaged."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import regression_metric

RANDOM_STATE = 42
C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))


def regress(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    cv: Any = 3,
    n_jobs: int = 1,
    grid: Sequence[float] = C_GRID,
) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import LinearSVR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = GridSearchCV(LinearSVR(random_state=RANDOM_STATE), param_grid={"C": list(grid)}, cv=cv, n_jobs=n_jobs)
        model.fit(x_train, np.asarray(y_train, dtype=float))
        return model.predict(x_test)


def kfold_splits(seed: int | None, folds: int = 3) -> Any:
    """``folds`` (SciRepEval: unshuffled) when ``seed`` is None, else shuffled folds of that seed."""
    if seed is None:
        return folds
    from sklearn.model_selection import KFold

    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def evaluate_regression(
    x_train: np.ndarray,
    y_train: Sequence[float],
    x_test: np.ndarray,
    y_test: Sequence[float],
    metrics: Sequence[str],
    n_jobs: int = 1,
    cv_seeds: int = 0,
    items: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Metrics of the SVR's test predictions (mean over seeds); ``items`` receives ``gold`` and the
    ``predictions`` of each seed (the paired bootstrap's input)."""
    gold = np.asarray(y_test, dtype=float)
    seeds = list(range(cv_seeds)) if cv_seeds > 0 else [None]  # as classification.seed_list
    runs = [regress(x_train, np.asarray(y_train, dtype=float), x_test, kfold_splits(s), n_jobs) for s in seeds]
    results = {m: float(np.mean([regression_metric(m, gold, p) for p in runs])) for m in metrics}
    if items is not None:
        items["gold"] = gold.tolist()
        items["predictions"] = [np.asarray(p, dtype=float).tolist() for p in runs]
    return results
