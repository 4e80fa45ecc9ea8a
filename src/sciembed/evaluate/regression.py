"""Regression as SciRepEval does it: a linear SVR on frozen embeddings, 3-fold grid over C in
logspace(-4, 2, 7), scikit-learn's default scoring; the metric is Kendall's tau (x 100)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .metrics import regression_metric

RANDOM_STATE = 42
C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))


def regress(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    cv: int = 3,
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


def evaluate_regression(
    x_train: np.ndarray,
    y_train: Sequence[float],
    x_test: np.ndarray,
    y_test: Sequence[float],
    metrics: Sequence[str],
    n_jobs: int = 1,
) -> dict[str, float]:
    preds = regress(x_train, np.asarray(y_train, dtype=float), x_test, n_jobs=n_jobs)
    return {m: regression_metric(m, np.asarray(y_test, dtype=float), preds) for m in metrics}
