"""Metric functions (pure): trec_eval measures through pytrec_eval (or, where it is not installed,
its numpy equivalent for the measures sciembed uses), scikit-learn F1, Kendall tau.

All values are on SciRepEval's scale (x 100) and are not rounded (round only for display).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

CLASSIFICATION_METRICS = ("f1", "accuracy", "precision", "recall")
REGRESSION_METRICS = ("kendalltau", "pearsonr", "spearmanr", "mse", "r2")


def trec_measures(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], measures: Sequence[str]
) -> dict[str, float]:
    """trec_eval measures (``ndcg``, ``map``, ``P_5``, ``recall_10``, ``ndcg_cut_10`` ...) averaged over
    the queries of ``run`` (as pytrec_eval aggregates them), x 100."""
    if not run:
        return {m: float("nan") for m in measures}
    per_query = _per_query(qrels, run, set(measures))
    out = {}
    for measure in measures:
        values = [scores[measure] for scores in per_query.values()]
        try:
            import pytrec_eval

            out[measure] = 100.0 * float(pytrec_eval.compute_aggregated_measure(measure, values))
        except ImportError:  # the fallback's measures are means over queries
            out[measure] = 100.0 * float(np.mean(values)) if values else float("nan")
    return out


def _per_query(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], measures: set[str]
) -> dict[str, dict[str, float]]:
    qrels = {str(q): {str(c): int(s) for c, s in cands.items()} for q, cands in qrels.items()}
    run = {str(q): {str(c): float(s) for c, s in cands.items()} for q, cands in run.items()}
    try:
        import pytrec_eval
    except ImportError:
        from . import trec_fallback

        return trec_fallback.evaluate(qrels, run, measures)
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def trec_per_query(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], measure: str
) -> dict[str, float]:
    """One trec_eval measure per query of ``run`` (x 100); their mean is :func:`trec_measures`' value for
    the measures that trec_eval averages over queries (``map``, ``ndcg``, ``P_k``, ``recall_k`` ...)."""
    if not run:
        return {}
    return {q: 100.0 * float(scores[measure]) for q, scores in _per_query(qrels, run, {measure}).items()}


def classification_metric(name: str, y_true, y_pred) -> float:
    """SciRepEval's classification metric names: ``f1`` (binary), ``f1_macro``, ``f1_micro``,
    ``accuracy``, ``precision_macro`` ... computed with scikit-learn, x 100."""
    from sklearn import metrics

    base, _, average = name.partition("_")
    if base not in CLASSIFICATION_METRICS:
        raise ValueError(
            f"unknown classification metric {name!r}; known: f1[_avg], accuracy, precision[_avg], recall[_avg]"
        )
    if base == "accuracy":
        return 100.0 * float(metrics.accuracy_score(y_true, y_pred))
    fn = {"f1": metrics.f1_score, "precision": metrics.precision_score, "recall": metrics.recall_score}[base]
    kwargs = {"average": average} if average else {}
    return 100.0 * float(fn(y_true, y_pred, zero_division=0, **kwargs))


def f1_macro(y_true, y_pred) -> float:
    return classification_metric("f1_macro", y_true, y_pred)


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's tau-b between gold values and predictions, x 100 (scipy)."""
    from scipy.stats import kendalltau

    return 100.0 * float(kendalltau(np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)).statistic)


def regression_metric(name: str, y_true, y_pred) -> float:
    """``kendalltau``, ``pearsonr``, ``spearmanr``, ``r2`` (x 100) or ``mse`` (raw)."""
    from scipy import stats
    from sklearn import metrics

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if name == "kendalltau":
        return kendall_tau(y_true, y_pred)
    if name == "pearsonr":
        return 100.0 * float(stats.pearsonr(y_true, y_pred).statistic)
    if name == "spearmanr":
        return 100.0 * float(stats.spearmanr(y_true, y_pred).statistic)
    if name == "r2":
        return 100.0 * float(metrics.r2_score(y_true, y_pred))
    if name == "mse":
        return float(metrics.mean_squared_error(y_true, y_pred))
    raise ValueError(f"unknown regression metric {name!r}; known: {', '.join(REGRESSION_METRICS)}")
