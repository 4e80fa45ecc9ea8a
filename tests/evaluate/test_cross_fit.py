"""Cross-fitted supervised tasks (``cross_fit`` = k): every labelled paper is predicted once, by the
model fitted on the other folds, and the bootstrap sees all of them."""

import json

import numpy as np
import pytest

from sciembed.evaluate import RandomModel, read_task_file, run_benchmark
from sciembed.evaluate.bootstrap import classification_replicates
from sciembed.evaluate.classification import evaluate_classification
from sciembed.evaluate.cross_fit import cross_fitted, fold_indices
from sciembed.evaluate.metrics import regression_metric
from sciembed.evaluate.registry import parse_task_lines
from sciembed.evaluate.regression import evaluate_regression


def _data(n=90, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    labels = np.where(x[:, 0] + 0.7 * rng.normal(size=n) > 0, "pos", "neg").tolist()
    return x, labels, rng


def test_folds_cover_every_item_once_and_stratify_single_labels():
    labels = ["a"] * 30 + ["b"] * 15 + ["c"] * 3
    folds = fold_indices(labels, 3, stratified=True)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(labels)))
    for fold in folds:  # each class spread over the folds
        assert [labels[i] for i in fold].count("a") == 10 and [labels[i] for i in fold].count("c") == 1
    again = fold_indices(labels, 3, stratified=True)
    assert all((a == b).all() for a, b in zip(folds, again, strict=True))  # seeded
    assert [len(f) for f in fold_indices(list(range(10)), 2, stratified=False)] == [5, 5]
    with pytest.raises(ValueError, match="cross_fit 3 needs at least 3 labelled papers, got 2"):
        fold_indices(["a", "b"], 3, stratified=True)


def test_each_item_is_predicted_by_the_model_of_the_other_folds():
    x, labels, _ = _data()
    items: dict = {}
    metrics = cross_fitted("classification", x, labels, ["f1_macro", "accuracy"], 3, cv_seeds=2, items=items)
    assert len(items["gold"]) == 90 and len(items["predictions"]) == 2
    assert all(len(run) == 90 and None not in run for run in items["predictions"])
    # fold 0's predictions are those of a model fitted on folds 1 and 2
    test = fold_indices(labels, 3, stratified=True)[0]
    train = np.setdiff1d(np.arange(90), test)
    direct: dict = {}
    evaluate_classification(
        x[train], [labels[i] for i in train], x[test], [labels[i] for i in test], ["f1_macro"], cv_seeds=2, items=direct
    )
    for seed in range(2):
        assert [items["predictions"][seed][i] for i in test] == direct["predictions"][seed]
    # the bootstrap's full-sample value is the reported score, over all 90 items
    full = classification_replicates("f1_macro", items["gold"], items["predictions"], np.ones((1, 90)))
    assert full[0] == pytest.approx(metrics["f1_macro"])
    assert metrics["accuracy"] > 65  # the label follows x[:, 0]: a real classifier, not chance


def test_cross_fitted_regression_and_multi_label():
    x, _, rng = _data()
    target = 2 * x[:, 1] + 0.5 * rng.normal(size=90)
    items: dict = {}
    scores = cross_fitted("regression", x, target.tolist(), ["kendalltau"], 2, items=items)
    assert scores["kendalltau"] == pytest.approx(regression_metric("kendalltau", target, items["predictions"][0]))
    assert scores["kendalltau"] > 50
    both = [sorted({"pos" if a > 0 else "neg", "big" if b > 0 else "small"}) for a, b in x[:, :2]]
    multi: dict = {}
    result = cross_fitted("classification", x, both, ["f1_macro"], 3, multi_label=True, items=multi)
    assert multi["labels"] == ["big", "neg", "pos", "small"]
    full = classification_replicates("f1_macro", multi["gold"], multi["predictions"], np.ones((1, 90)), multi["labels"])
    assert full[0] == pytest.approx(result["f1_macro"]) and result["f1_macro"] > 70
    with pytest.raises(ValueError, match="not 'proximity'"):
        cross_fitted("proximity", x, both, ["map"], 3)


def test_a_split_task_is_unchanged_by_the_module():
    """Without cross_fit the task scores its test split only (SciRepEval's protocol)."""
    x, labels, _ = _data()
    items: dict = {}
    evaluate_regression(x[:60], np.arange(60.0), x[60:], np.arange(30.0), ["kendalltau"], items=items)
    assert len(items["gold"]) == 30


def test_task_lines_check_cross_fit():
    base = {"name": "t", "type": "classification", "data": {"meta": "m.jsonl", "test": "d"}, "metrics": ["f1_macro"]}
    assert parse_task_lines([json.dumps({**base, "cross_fit": 3})])[0].cross_fit == 3
    assert parse_task_lines([json.dumps(base)])[0].cross_fit == 0
    for bad, reason in [
        ({"cross_fit": 1}, "cross_fit must be 0"),
        ({"cross_fit": True}, "cross_fit must be 0"),
        ({"type": "proximity", "metrics": ["map"], "cross_fit": 2}, "only valid for classification and regression"),
        ({"cross_fit": 2, "few_shot": [{"sample_size": 5, "iterations": 2}]}, "cannot be combined"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_task_lines([json.dumps({**base, **bad})])


def test_a_cross_fitted_task_scores_every_paper_end_to_end(unseen_task_file, tiny_eval_model, tmp_path):
    lines = unseen_task_file.read_text().splitlines()
    tasks = [json.loads(line) for line in lines]
    for task in tasks:
        if task["name"] in ("Topic", "Year", "Topic multi"):
            task.pop("few_shot", None)
            task["cross_fit"] = 3
    unseen_task_file.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    specs = [t for t in read_task_file(unseen_task_file) if t.cross_fit]
    report = run_benchmark(
        [tiny_eval_model, RandomModel()], specs, output_dir=tmp_path / "out", cache_dir=tmp_path / "cache"
    )
    table = (tmp_path / "out" / "results.md").read_text()
    assert "Cross-fitted (every labelled paper scored once, by the model of the other folds): Topic (3 folds)" in table
    tiny = report.models[0]
    for name in ("Topic", "Year", "Topic multi"):
        result = tiny.tasks[name]
        assert result.ok and result.counts == {"items": 24, "folds": 3}  # 16 train + 8 test papers, all scored
        assert result.n_items == 24
        assert report.comparisons.models["random"].tasks[name].interval.n == 24
    topic = tiny.tasks["Topic"].items  # the reported score is that of all 24 papers' predictions
    full = classification_replicates("f1_macro", topic.gold, topic.predictions, np.ones((1, 24)))
    assert full[0] == pytest.approx(tiny.tasks["Topic"].main_score)
