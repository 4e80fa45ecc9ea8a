"""Checking metric names when a task list is parsed (a typo must fail at once, not after embedding)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

CLASSIFICATION_AVERAGES = ("", "macro", "micro", "weighted", "samples", "binary")
_CUTOFFS = re.compile(r"^\d+(,\d+)*$")


def _trec_measures() -> frozenset[str] | None:
    """trec_eval's measures; None without pytrec_eval (the GPU machine: the fallback's are checked)."""
    try:
        import pytrec_eval
    except ImportError:
        return None
    return frozenset(pytrec_eval.supported_measures)


def unknown_metric(kind: str, name: str) -> str | None:
    """Why ``name`` is not a metric of a ``kind`` task (None: it is one)."""
    if kind == "classification":
        base, _, average = name.partition("_")
        if base in CLASSIFICATION_METRICS and average in CLASSIFICATION_AVERAGES:
            return None
        return (
            f"unknown classification metric {name!r}; known: {', '.join(CLASSIFICATION_METRICS)} (+ _macro, _micro ...)"
        )
    if kind == "regression":
        if name in REGRESSION_METRICS:
            return None
        return f"unknown regression metric {name!r}; known: {', '.join(REGRESSION_METRICS)}"
    measures = _trec_measures()
    base, _, cutoffs = name.rpartition("_")
    if measures is None:
        from . import trec_fallback

        if trec_fallback.supported(name):
            return None
    elif name in measures or (base in measures and _CUTOFFS.match(cutoffs)):
        return None
    return f"unknown ranking metric {name!r}; trec_eval measures such as map, ndcg, P_5, recall_10, ndcg_cut_10"


def check_metric_names(kind: str, names: Sequence[str], prefix: str = "") -> None:
    for name in names:
        reason = unknown_metric(kind, name)
        if reason is not None:
            raise ValueError(prefix + reason)
