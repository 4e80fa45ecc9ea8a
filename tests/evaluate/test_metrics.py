"""Metric values known by hand, and exact agreement with pytrec_eval and scikit-learn."""

import math

import numpy as np
import pytest
import pytrec_eval
from scipy.stats import kendalltau
from sklearn.metrics import f1_score

from sciembed.evaluate.metrics import classification_metric, kendall_tau, regression_metric, trec_measures


def test_perfect_ranking_scores_100():
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    out = trec_measures(qrels, run, ["ndcg", "map", "P_1", "recall_5"])
    assert out == pytest.approx({"ndcg": 100.0, "map": 100.0, "P_1": 100.0, "recall_5": 100.0})


def test_reversed_ranking_by_hand():
    # binary: the one relevant document ranked 3rd of 3
    out = trec_measures({"q": {"a": 1, "b": 0, "c": 0}}, {"q": {"a": 1.0, "b": 2.0, "c": 3.0}}, ["ndcg", "map", "P_1"])
    assert out["ndcg"] == pytest.approx(100 * 1 / math.log2(4))  # 50
    assert out["map"] == pytest.approx(100 / 3)
    assert out["P_1"] == 0.0
    # graded (trec_eval ndcg: gain = relevance): run c, b, a for relevances a=2, b=1, c=0
    out = trec_measures({"q": {"a": 2, "b": 1, "c": 0}}, {"q": {"a": 1.0, "b": 2.0, "c": 3.0}}, ["ndcg"])
    dcg = 0 / math.log2(2) + 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert out["ndcg"] == pytest.approx(100 * dcg / idcg)


def test_measures_average_over_queries_and_p_at_k():
    qrels = {"q1": {"a": 1, "b": 0}, "q2": {"a": 1, "b": 1}}
    run = {"q1": {"a": 0.5, "b": 0.9}, "q2": {"a": -1.0, "b": -2.0}}
    out = trec_measures(qrels, run, ["map", "P_5", "recall_1"])
    assert out["map"] == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert out["P_5"] == pytest.approx(100 * (1 / 5 + 2 / 5) / 2)  # trec_eval divides by k
    assert out["recall_1"] == pytest.approx(100 * (0 + 0.5) / 2)


def test_trec_measures_equal_pytrec_eval_on_random_runs():
    rng = np.random.default_rng(42)
    qrels, run = {}, {}
    for q in range(20):
        qrels[f"q{q}"] = {f"d{d}": int(rng.integers(0, 3)) for d in range(12)}
        run[f"q{q}"] = {f"d{d}": float(rng.normal()) for d in range(12)}
    measures = ["ndcg", "map", "P_5", "P_10", "recall_5", "recall_10", "ndcg_cut_10"]
    ours = trec_measures(qrels, run, measures)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(measures)).evaluate(run)
    for m in measures:
        expected = 100 * pytrec_eval.compute_aggregated_measure(m, [v[m] for v in per_query.values()])
        assert ours[m] == expected  # exactly


def test_kendall_tau_of_known_orders():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(100.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-100.0)
    # one swapped pair of six: (5 concordant - 1 discordant) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(100 * 4 / 6)
    y, p = np.random.default_rng(0).normal(size=(2, 50))
    assert kendall_tau(y, p) == 100 * kendalltau(y, p).statistic
    assert regression_metric("kendalltau", y, p) == kendall_tau(y, p)


def test_f1_macro_by_hand_and_equal_to_sklearn():
    y_true, y_pred = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    # class a: P 1, R 1/2, F1 2/3; class b: P 2/3, R 1, F1 4/5
    assert classification_metric("f1_macro", y_true, y_pred) == pytest.approx(100 * (2 / 3 + 4 / 5) / 2)
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 5, 100), rng.integers(0, 5, 100)
    assert classification_metric("f1_macro", t, p) == 100 * f1_score(t, p, average="macro")
    assert classification_metric("accuracy", t, p) == 100 * np.mean(t == p)
    tb, pb = rng.integers(0, 2, 60), rng.integers(0, 2, 60)
    assert classification_metric("f1", tb, pb) == 100 * f1_score(tb, pb)
    multi_t, multi_p = rng.integers(0, 2, (30, 4)), rng.integers(0, 2, (30, 4))
    assert classification_metric("f1_macro", multi_t, multi_p) == 100 * f1_score(multi_t, multi_p, average="macro")


def test_unknown_metrics_are_rejected():
    with pytest.raises(ValueError, match="unknown classification metric"):
        classification_metric("auc", [1], [1])
    with pytest.raises(ValueError, match="unknown regression metric"):
        regression_metric("mae", [1, 2], [1, 2])


def test_numpy_fallback_equals_pytrec_eval_with_ties_and_graded_judgements():
    """Where pytrec_eval is not installed (the GPU machine) the fallback computes the same values."""
    from sciembed.evaluate import trec_fallback

    rng = np.random.default_rng(11)
    qrels, run = {}, {}
    for q in range(40):
        docs = [f"d{q}-{i:02d}" for i in range(rng.integers(3, 25))]
        grades = rng.choice([0, 0, 1, 2], len(docs))
        grades[0] = max(grades[0], 1)
        qrels[f"q{q}"] = {d: int(g) for d, g in zip(docs, grades, strict=True)}
        scores = rng.integers(0, 6, len(docs)).astype(float)  # many ties
        run[f"q{q}"] = {d: float(s) for d, s in zip(docs, scores, strict=True) if rng.random() > 0.1}
    run["unjudged"] = {"x": 1.0}
    measures = {"map", "ndcg", "P_5", "recall_10", "ndcg_cut_10"}
    expected = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    got = trec_fallback.evaluate(qrels, run, measures)
    assert set(got) == set(expected)
    for q in expected:
        for m in measures:
            assert got[q][m] == pytest.approx(expected[q][m], abs=1e-12), (q, m)
    with pytest.raises(ValueError, match="needs pytrec_eval"):
        trec_fallback.query_measure(qrels["q0"], run["q0"], "bpref")


def test_task_lines_parse_without_pytrec_eval():
    """The GPU machine has no pytrec_eval wheel for its Python: ranking metrics are checked against the
    numpy fallback's measures there, and a measure only trec_eval knows is refused by name."""
    import subprocess
    import sys

    code = (
        "import sys, json; sys.modules['pytrec_eval'] = None\n"
        "from sciembed.evaluate.registry import parse_task_lines\n"
        "line = {'name': 't', 'type': 'proximity', 'data': {'meta': 'm.jsonl', 'test': 'd'}}\n"
        "ok = parse_task_lines([json.dumps({**line, 'metrics': ['map', 'ndcg', 'P_5', 'recall_10']})])\n"
        "print(ok[0].metrics)\n"
        "try:\n"
        "    parse_task_lines([json.dumps({**line, 'metrics': ['bpref']})])\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "['map', 'ndcg', 'P_5', 'recall_10']" in out.stdout
    assert "refused: <tasks>:1: task 't': unknown ranking metric 'bpref'" in out.stdout
