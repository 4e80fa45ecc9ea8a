"""Paired bootstrap: hand-made cases, exactness against scikit-learn / scipy, shared resamples, averages."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import f1_score

from sciembed.evaluate.bootstrap import (
    _counts,
    classification_replicates,
    ranking_replicates,
    regression_replicates,
    resample_indices,
    task_replicates,
)
from sciembed.evaluate.bootstrap import compare_models as compare_results
from sciembed.evaluate.results import ItemScores, SuiteResult


def _ranking_task(name, in_training=False, type_="proximity"):
    return {"name": name, "type": type_, "kind": type_, "main_metric": "map", "in_training": in_training}


def _model(name, per_task):
    tasks = {
        t: {
            "status": "ok",
            "main_score": float(np.mean(s)),
            "items": {"ids": [f"q{i}" for i in range(len(s))], "scores": s},
        }
        for t, s in per_task.items()
    }
    return {"name": name, "spec": name, "status": "ok", "tasks": tasks}


def compare_models(report, *args, **kwargs):
    """Compare the models of a ``results.json``-shaped dict (read as old and new files are)."""
    return compare_results(SuiteResult.from_json(report), *args, **kwargs)


def _items(data):
    return ItemScores.from_json(data)


def test_two_queries_by_hand():
    """Per-query differences [100, 0]: a resample's mean difference is 0, 50 or 100 (with chances
    1/4, 1/2, 1/4), so the 95% interval is [0, 100] around the point difference 50."""
    task = _ranking_task("t")
    report = {"tasks": [task], "models": [_model("a", {"t": [0.0, 100.0]}), _model("b", {"t": [100.0, 100.0]})]}
    out = compare_models(report, "a", n_boot=2000)
    entry = out.models["b"].tasks["t"].interval
    assert entry.diff == 50.0 and entry.low == 0.0 and entry.high == 100.0
    scored = task_replicates(
        task,
        {
            "a": _items(report["models"][0]["tasks"]["t"]["items"]),
            "b": _items(report["models"][1]["tasks"]["t"]["items"]),
        },
        2000,
    )
    diffs = scored["b"][1] - scored["a"][1]
    assert set(np.unique(diffs)) <= {0.0, 50.0, 100.0}
    assert np.mean(diffs == 50.0) == pytest.approx(0.5, abs=0.05)


def test_identical_models_have_a_zero_interval_and_constant_gains_are_exact():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 100, 300).tolist()
    tasks = [_ranking_task("t1"), _ranking_task("t2", type_="adhoc_search")]
    same = compare_models(
        {
            "tasks": tasks,
            "models": [_model("a", {"t1": scores, "t2": scores}), _model("b", {"t1": scores, "t2": scores})],
        },
        "a",
        n_boot=200,
    )
    avg = same.models["b"].average("out_of_training")
    assert (avg.diff, avg.low, avg.high) == (0.0, 0.0, 0.0)
    plus = [s + 1.5 for s in scores]
    gain = compare_models(
        {
            "tasks": tasks,
            "models": [_model("a", {"t1": scores, "t2": scores}), _model("b", {"t1": plus, "t2": scores})],
        },
        "a",
        n_boot=200,
    )
    t1 = gain.models["b"].tasks["t1"].interval
    assert t1.diff == pytest.approx(1.5) and t1.low == pytest.approx(1.5) and t1.high == pytest.approx(1.5)
    avg = gain.models["b"]
    assert avg.average("out_of_training").diff == pytest.approx(0.75) and avg.average("out_of_training").n == 2
    assert avg.average("out_of_training/proximity").diff == pytest.approx(1.5)
    assert avg.average("out_of_training/adhoc_search").diff == pytest.approx(0.0)
    assert avg.averages["in_training"].n == 0 and avg.average("in_training") is None
    assert avg.averages["in_training"].to_json() == {"diff": None, "low": None, "high": None, "n": 0, "of": 0}


def test_resamples_are_shared_by_models_and_fixed_by_task_name():
    a = resample_indices(50, 10, 123)
    np.testing.assert_array_equal(a, resample_indices(50, 10, 123))
    counts = _counts(a, 50)
    assert counts.shape == (10, 50) and (counts.sum(axis=1) == 50).all()
    scores = np.arange(50, dtype=float)
    np.testing.assert_allclose(ranking_replicates(scores, counts), scores[a].mean(axis=1))


def test_group_average_interval_is_the_percentile_of_mean_task_differences():
    rng = np.random.default_rng(1)
    a1, a2 = rng.uniform(0, 100, 80), rng.uniform(0, 100, 120)
    b1, b2 = a1 + rng.normal(2, 10, 80), a2 + rng.normal(-1, 10, 120)
    tasks = [_ranking_task("t1"), _ranking_task("t2")]
    report = {
        "tasks": tasks,
        "models": [
            _model("a", {"t1": a1.tolist(), "t2": a2.tolist()}),
            _model("b", {"t1": b1.tolist(), "t2": b2.tolist()}),
        ],
    }
    out = compare_models(report, "a", n_boot=500).models["b"]
    reps = []
    for name, x, y in (("t1", a1, b1), ("t2", a2, b2)):
        scored = task_replicates(
            tasks[0] | {"name": name},
            {
                "a": ItemScores([f"q{i}" for i in range(len(x))], scores=x.tolist()),
                "b": ItemScores([f"q{i}" for i in range(len(y))], scores=y.tolist()),
            },
            500,
        )
        reps.append(scored["b"][1] - scored["a"][1])
    low, high = np.percentile(np.mean(reps, axis=0), [2.5, 97.5])
    avg = out.average("out_of_training")
    assert avg.low == pytest.approx(low) and avg.high == pytest.approx(high)
    assert avg.diff == pytest.approx(np.mean([(b1 - a1).mean(), (b2 - a2).mean()]))
    assert avg.low < avg.diff < avg.high


def test_classification_replicates_equal_scikit_learn():
    rng = np.random.default_rng(2)
    gold = rng.choice(["x", "y", "z", "w"], 60).tolist()
    preds = [rng.choice(["x", "y", "z"], 60).tolist() for _ in range(3)]
    idx = resample_indices(60, 5, 9)
    reps = classification_replicates("f1_macro", gold, preds, _counts(idx, 60))
    g = np.array(gold)
    expected = [
        np.mean([100 * f1_score(g[i], np.array(p)[i], average="macro", zero_division=0) for p in preds]) for i in idx
    ]
    np.testing.assert_allclose(reps, expected)
    acc = classification_replicates("accuracy", gold, preds, np.ones((1, 60)))
    assert acc[0] == pytest.approx(100 * np.mean([np.mean(np.array(p) == g) for p in preds]))
    # multi-label: macro over every label of the task (scikit-learn's indicator-matrix semantics)
    labels = ["a", "b", "c", "d"]
    gold_m = [sorted(set(rng.choice(labels, 2).tolist())) for _ in range(40)]
    pred_m = [[sorted(set(rng.choice(labels[:3], 1).tolist())) for _ in range(40)]]
    reps_m = classification_replicates("f1_macro", gold_m, pred_m, _counts(resample_indices(40, 4, 3), 40), labels)
    from sklearn.preprocessing import MultiLabelBinarizer

    mlb = MultiLabelBinarizer(classes=labels).fit([labels])
    gm, pm = mlb.transform(gold_m), mlb.transform(pred_m[0])
    expected_m = [100 * f1_score(gm[i], pm[i], average="macro", zero_division=0) for i in resample_indices(40, 4, 3)]
    np.testing.assert_allclose(reps_m, expected_m)


def test_regression_replicates_equal_scipy():
    rng = np.random.default_rng(3)
    gold = rng.normal(size=50)
    preds = [gold + rng.normal(size=50), gold + rng.normal(size=50)]
    idx = resample_indices(50, 4, 5)
    reps = regression_replicates("kendalltau", gold, preds, idx)
    expected = [np.mean([100 * kendalltau(gold[i], p[i]).statistic for p in preds]) for i in idx]
    np.testing.assert_allclose(reps, expected)


def test_items_are_paired_by_id_and_missing_items_are_left_out():
    task = _ranking_task("t")
    a = ItemScores(["q1", "q2", "q3"], scores=[10.0, 20.0, 30.0])
    b = ItemScores(["q3", "q1"], scores=[35.0, 15.0])  # q2 missing, another order
    scored = task_replicates(task, {"a": a, "b": b}, 100)
    assert scored["a"][0] == pytest.approx(20.0) and scored["b"][0] == pytest.approx(25.0)
    np.testing.assert_allclose(scored["b"][1] - scored["a"][1], 5.0)


def test_unknown_reference_is_an_error():
    report = {"tasks": [_ranking_task("t")], "models": [_model("a", {"t": [1.0]})]}
    with pytest.raises(ValueError, match="no model 'zz'"):
        compare_models(report, "zz")


def test_cv_seeds_average_shuffled_grid_searches():
    """cv_seeds = 3: three grid searches on differently shuffled folds, metrics and items per seed."""
    from sciembed.evaluate.classification import classify, cv_splits, evaluate_classification
    from sciembed.evaluate.metrics import classification_metric, regression_metric
    from sciembed.evaluate.regression import evaluate_regression, kfold_splits, regress

    rng = np.random.default_rng(4)
    x = rng.normal(size=(90, 6))
    y = np.where(x[:, 0] + 0.8 * rng.normal(size=90) > 0, "pos", "neg")
    x_train, y_train, x_test, y_test = x[:60], y[:60], x[60:], y[60:]
    items: dict = {}
    metrics = evaluate_classification(x_train, y_train, x_test, y_test, ["f1_macro"], cv_seeds=3, items=items)
    runs = [classify(x_train, y_train, x_test, cv=cv_splits(seed)) for seed in range(3)]
    assert metrics["f1_macro"] == pytest.approx(np.mean([classification_metric("f1_macro", y_test, p) for p in runs]))
    assert len(items["predictions"]) == 3 and items["gold"] == y_test.tolist()
    folds = [[tuple(test) for _, test in cv_splits(seed).split(x_train, y_train)] for seed in range(3)]
    assert folds[0] != folds[1] != folds[2]  # the seeds shuffle differently
    # the bootstrap's full-sample value is the reported score
    full = classification_replicates("f1_macro", items["gold"], items["predictions"], np.ones((1, 30)))
    assert full[0] == pytest.approx(metrics["f1_macro"])
    target = x[:, 0] * 2 + rng.normal(size=90)
    items = {}
    scores = evaluate_regression(x_train, target[:60], x_test, target[60:], ["kendalltau"], cv_seeds=2, items=items)
    runs = [regress(x_train, target[:60], x_test, kfold_splits(seed)) for seed in range(2)]
    assert scores["kendalltau"] == pytest.approx(
        np.mean([regression_metric("kendalltau", target[60:], p) for p in runs])
    )
    assert len(items["predictions"]) == 2
    # without cv_seeds: SciRepEval's single unshuffled split
    single: dict = {}
    evaluate_classification(x_train, y_train, x_test, y_test, ["f1_macro"], items=single)
    assert len(single["predictions"]) == 1
