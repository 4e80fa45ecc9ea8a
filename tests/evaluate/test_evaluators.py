"""Classification, regression, retrieval and reviewer matching on small cases."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC, LinearSVR

from sciembed.evaluate.classification import C_GRID, classify, evaluate_classification, few_shot_predictions
from sciembed.evaluate.registry import FewShot
from sciembed.evaluate.regression import C_GRID as SVR_GRID
from sciembed.evaluate.regression import evaluate_regression, regress
from sciembed.evaluate.retrieval import missing_in_run, rank_by_distance
from sciembed.evaluate.reviewer import evaluate_reviewer_matching, rank_reviewers, reviewer_score


def _blobs(n=60, classes=3, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6, size=(classes, dim))
    y = np.arange(n) % classes
    return centers[y] + rng.normal(size=(n, dim)), y


def test_separable_classes_give_f1_100():
    x, y = _blobs()
    out = evaluate_classification(x[:45], [f"c{v}" for v in y[:45]], x[45:], [f"c{v}" for v in y[45:]], ["f1_macro"])
    assert out["f1_macro"] == pytest.approx(100.0)


def test_classify_equals_sklearn_grid_search():
    x, y = _blobs(n=90, seed=3)
    x += np.random.default_rng(9).normal(scale=4, size=x.shape)  # overlap so that C matters
    ours = classify(x[:60], y[:60], x[60:])
    ref = GridSearchCV(LinearSVC(loss="squared_hinge", random_state=42), {"C": list(C_GRID)}, cv=3).fit(x[:60], y[:60])
    np.testing.assert_array_equal(ours, ref.predict(x[60:]))
    assert list(C_GRID) == [0.01, 0.1, 1.0, 10.0, 100.0]


def test_multilabel_one_vs_rest_equals_sklearn():
    x, y = _blobs(n=60, classes=3, seed=4)
    labels = np.zeros((60, 3), dtype=int)
    labels[np.arange(60), y] = 1
    labels[:, 2] |= (x[:, 0] > 0).astype(int)
    ours = classify(x[:40], labels[:40], x[40:], multi_label=True)
    est = LinearSVC(loss="hinge", dual=True, max_iter=10000, random_state=42)
    ref = OneVsRestClassifier(GridSearchCV(est, {"C": list(C_GRID)}, cv=3)).fit(x[:40], labels[:40])
    np.testing.assert_array_equal(ours, ref.predict(x[40:]))
    names = [["a"] if v == 0 else ["b", "c"] for v in y]
    out = evaluate_classification(x[:40], names[:40], x[40:], names[40:], ["f1_macro"], multi_label=True)
    assert out["f1_macro"] == pytest.approx(100.0)


def test_few_shot_reports_mean_over_iterations():
    x, y = _blobs(n=90, seed=5)
    preds = few_shot_predictions(x[:60], y[:60], x[60:], sample_size=6, iterations=4)
    assert len(preds) == 4
    out = evaluate_classification(x[:60], y[:60], x[60:], y[60:], ["f1_macro"], few_shot=[FewShot(6, 4)])
    assert 0 <= out["fewshot_6_f1_macro"] <= 100


def test_regression_tau_and_sklearn_equality():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    out = evaluate_regression(x[:60], y[:60], x[60:], y[60:], ["kendalltau", "pearsonr"])
    assert out["kendalltau"] > 95 and out["pearsonr"] > 99
    ref = GridSearchCV(LinearSVR(random_state=42), {"C": list(SVR_GRID)}, cv=3).fit(x[:60], y[:60])
    np.testing.assert_allclose(regress(x[:60], y[:60], x[60:]), ref.predict(x[60:]))
    assert SVR_GRID == pytest.approx(tuple(np.logspace(-4, 2, 7)))


def test_rank_by_negative_l2_distance():
    q = {"q": np.array([0.0, 0.0])}
    docs = {"a": np.array([3.0, 4.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, -2.0])}
    run = rank_by_distance(q, docs, {"q": ["a", "b", "c", "zz"], "gone": ["a"]})
    assert run == {"q": {"a": -5.0, "b": -1.0, "c": -2.0}}
    assert missing_in_run({"q": ["a", "b", "c", "zz"], "gone": ["a"]}, run) == {"queries": 1, "pairs": 2}


def test_reviewer_score_is_mean_of_top3_cosines():
    paper = np.array([1.0, 0.0])
    reviewer = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [2.0, 0.0]])
    # cosines 1, 0, 0.7071, -1, 1 -> top 3: 1, 1, 0.7071
    assert reviewer_score(paper, reviewer) == pytest.approx((1 + 1 + 2**-0.5) / 3)
    assert reviewer_score(paper, reviewer[:2]) == pytest.approx(0.5)  # fewer than 3 papers: all of them


def test_reviewer_matching_precision():
    vecs = {"p": np.array([1.0, 0.0]), "x1": np.array([1.0, 0.1]), "y1": np.array([0.0, 1.0])}
    run = rank_reviewers(vecs, vecs, {"rx": ["x1"], "ry": ["y1"]}, {"p": ["rx", "ry"]})
    assert run["p"]["rx"] > run["p"]["ry"]
    out = evaluate_reviewer_matching({"p": {"rx": 1, "ry": 0}}, {"p": {"rx": 1, "ry": 1}}, run)
    assert out == pytest.approx({"hard_P_5": 20.0, "hard_P_10": 10.0, "soft_P_5": 40.0, "soft_P_10": 20.0})
