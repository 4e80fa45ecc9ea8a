"""Classification as SciRepEval does it: linear SVMs on frozen embeddings, 3-fold grid search over C.

Single label: ``LinearSVC(loss="squared_hinge")`` in ``GridSearchCV(cv=3)`` over C in {0.01 .. 100}.
Multi-label: one-vs-rest, each label its own ``GridSearchCV`` of ``LinearSVC(loss="hinge",
max_iter=10000)``. Grid search uses scikit-learn's default scoring (as SciRepEval). Few-shot: repeated
stratified samples (single label: the folds of a ``StratifiedKFold`` with ``ceil(n / sample_size)``
splits, each fold a training set, no grid; multi-label: ``sample_size`` positives per label, seed
42 + iteration), the metric averaged over the iterations.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import classification_metric

RANDOM_STATE = 42
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


@contextlib.contextmanager
def _quiet():
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only 1 member" etc.
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def cv_splits(seed: int | None, folds: int = 3) -> Any:
    """``folds`` (SciRepEval: unshuffled) when ``seed`` is None, else shuffled stratified folds of that seed."""
    if seed is None:
        return folds
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)


def seed_list(cv_seeds: int) -> list[int | None]:
    """The grid-search seeds of a task: ``[None]`` (one unshuffled split) or ``0 .. cv_seeds - 1``."""
    return list(range(cv_seeds)) if cv_seeds > 0 else [None]


def build_classifier(multi_label: bool, cv: Any = 3, n_jobs: int = 1, grid: Sequence[float] = C_GRID):
    from sklearn.model_selection import GridSearchCV
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    params = {"C": list(grid)}
    if multi_label:
        estimator = LinearSVC(loss="hinge", dual=True, max_iter=10000, random_state=RANDOM_STATE)
        return OneVsRestClassifier(GridSearchCV(estimator, param_grid=params, cv=cv, n_jobs=n_jobs), n_jobs=1)
    estimator = LinearSVC(loss="squared_hinge", random_state=RANDOM_STATE)
    if not cv:
        return estimator
    return GridSearchCV(estimator, param_grid=params, cv=cv, n_jobs=n_jobs)


def classify(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    multi_label: bool = False,
    cv: Any = 3,
    n_jobs: int = 1,
    grid: Sequence[float] = C_GRID,
) -> np.ndarray:
    """Fit the SciRepEval classifier on the training embeddings, predict the test embeddings.

    ``y_train``: labels (single label) or a 0/1 indicator matrix (multi-label).
    """
    with _quiet():
        model = build_classifier(multi_label, cv, n_jobs, grid)
        model.fit(x_train, y_train)
        return model.predict(x_test)


def binarize(train_labels: Sequence[Sequence[str]], test_labels: Sequence[Sequence[str]]):
    """Indicator matrices over the sorted union of labels (multi-label tasks)."""
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer()
    binarizer.fit(list(train_labels) + list(test_labels))
    return binarizer.transform(train_labels), binarizer.transform(test_labels), list(binarizer.classes_)


def few_shot_predictions(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    sample_size: int,
    iterations: int,
    multi_label: bool = False,
    n_jobs: int = 1,
) -> list[np.ndarray]:
    """Predictions of ``iterations`` classifiers, each trained on a small stratified sample."""
    from sklearn.model_selection import StratifiedKFold

    preds: list[np.ndarray] = []
    if multi_label:
        rng_state = RANDOM_STATE
        for k in range(iterations):
            rng = np.random.RandomState(rng_state + k)
            chosen: set[int] = set()
            for label in range(y_train.shape[1]):
                positives = np.where(y_train[:, label] == 1)[0]
                if len(positives):
                    take = min(sample_size, len(positives))
                    chosen.update(rng.choice(positives, take, replace=False).tolist())
            idx = sorted(chosen)
            preds.append(classify(x_train[idx], y_train[idx], x_test, multi_label=True, n_jobs=n_jobs))
        return preds
    n_splits = max(2, math.ceil(x_train.shape[0] / sample_size))
    with _quiet():
        folds = list(StratifiedKFold(n_splits=n_splits).split(x_train, y_train))
    for _, fold in folds[:iterations]:
        if len(np.unique(y_train[fold])) < 2:
            continue
        preds.append(classify(x_train[fold], y_train[fold], x_test, cv=0))
    return preds


def evaluate_classification(
    x_train: np.ndarray,
    labels_train: Sequence[Any],
    x_test: np.ndarray,
    labels_test: Sequence[Any],
    metrics: Sequence[str],
    multi_label: bool = False,
    few_shot: Sequence[Any] = (),
    n_jobs: int = 1,
    cv_seeds: int = 0,
    items: dict[str, Any] | None = None,
) -> dict[str, float]:
    """SciRepEval's classification evaluation; few-shot results are keyed ``fewshot_<k>_<metric>``.

    ``items`` (a dict), when given, receives the per-item data of the paired bootstrap: ``gold`` and
    one list of ``predictions`` per seed (labels; multi-label: label lists) and ``labels`` (the label
    set of the multi-label metrics).
    """
    if multi_label:
        y_train, y_test, classes = binarize(labels_train, labels_test)
    else:
        y_train, y_test, classes = np.asarray(labels_train), np.asarray(labels_test), None
    if not multi_label and len(np.unique(y_train)) < 2:
        raise ValueError("the training split has fewer than two classes")
    runs = [classify(x_train, y_train, x_test, multi_label, cv_splits(seed), n_jobs) for seed in seed_list(cv_seeds)]
    results = {m: float(np.mean([classification_metric(m, y_test, p) for p in runs])) for m in metrics}
    if items is not None:
        items["gold"] = [list(v) if multi_label else _plain(v) for v in labels_test]
        if multi_label:
            items["labels"] = [str(c) for c in classes]
            items["predictions"] = [[[classes[j] for j in np.flatnonzero(row)] for row in p] for p in runs]
        else:
            items["predictions"] = [[_plain(v) for v in p] for p in runs]
    for shot in few_shot:
        shots = few_shot_predictions(x_train, y_train, x_test, shot.sample_size, shot.iterations, multi_label, n_jobs)
        for m in metrics:
            values = [classification_metric(m, y_test, p) for p in shots]
            results[f"fewshot_{shot.sample_size}_{m}"] = float(np.mean(values)) if values else float("nan")
    return results


def _plain(value: Any) -> Any:
    """A label as a JSON value (numpy scalars to Python)."""
    return value.item() if isinstance(value, np.generic) else value
