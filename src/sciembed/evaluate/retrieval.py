"""Proximity and ad-hoc search: re-rank each query's given candidates, score with trec_eval measures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .metrics import trec_measures


def rank_by_distance(
    query_vectors: Mapping[str, np.ndarray],
    doc_vectors: Mapping[str, np.ndarray],
    candidates: Mapping[str, Sequence[str]],
) -> dict[str, dict[str, float]]:
    """A trec run: each query's candidates scored by negative Euclidean distance (SciRepEval).

    Queries without a vector and candidates without a vector are left out of the run (count them
    with :func:`missing_in_run`).
    """
    run: dict[str, dict[str, float]] = {}
    for qid, cands in candidates.items():
        if qid not in query_vectors:
            continue
        present = [c for c in cands if c in doc_vectors]
        if not present:
            continue
        matrix = np.stack([doc_vectors[c] for c in present]).astype(np.float64)
        query = np.asarray(query_vectors[qid], dtype=np.float64)
        distances = np.sqrt(np.maximum(((matrix - query) ** 2).sum(axis=1), 0.0))
        run[qid] = {c: -float(d) for c, d in zip(present, distances, strict=True)}
    return run


def missing_in_run(candidates: Mapping[str, Sequence[str]], run: Mapping[str, Mapping[str, float]]) -> dict[str, int]:
    """How many queries / query-candidate pairs of the task did not make it into the run."""
    missing_queries = sum(1 for q in candidates if q not in run)
    missing_pairs = sum(1 for q, cands in candidates.items() for c in cands if c not in run.get(q, {}))
    return {"queries": missing_queries, "pairs": missing_pairs}


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], metrics: Sequence[str]
) -> dict[str, float]:
    return trec_measures(qrels, run, metrics)
