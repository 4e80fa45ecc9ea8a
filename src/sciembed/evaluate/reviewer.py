"""Paper-reviewer matching: a reviewer's score for a paper is the mean of the top-3 cosine similarities
between the paper and the reviewer's own papers; P@5 and P@10 on hard and soft relevance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .metrics import trec_measures

TOP_K = 3


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def reviewer_score(paper: np.ndarray, reviewer_papers: np.ndarray, top_k: int = TOP_K) -> float:
    """Mean of the ``top_k`` largest cosine similarities (all of them if the reviewer has fewer)."""
    sims = _unit(np.asarray(reviewer_papers, dtype=np.float64)) @ _unit(np.asarray(paper, dtype=np.float64))
    top = np.sort(sims)[::-1][:top_k]
    return float(top.mean())


def rank_reviewers(
    paper_vectors: Mapping[str, np.ndarray],
    doc_vectors: Mapping[str, np.ndarray],
    reviewers: Mapping[str, Sequence[str]],
    candidates: Mapping[str, Sequence[str]],
    top_k: int = TOP_K,
) -> dict[str, dict[str, float]]:
    """A trec run: for each paper, its candidate reviewers scored by :func:`reviewer_score`."""
    profiles: dict[str, np.ndarray] = {}
    for rid, papers in reviewers.items():
        present = [doc_vectors[p] for p in papers if p in doc_vectors]
        if present:
            profiles[rid] = np.stack(present)
    run: dict[str, dict[str, float]] = {}
    for pid, rids in candidates.items():
        if pid not in paper_vectors:
            continue
        scores = {r: reviewer_score(paper_vectors[pid], profiles[r], top_k) for r in rids if r in profiles}
        if scores:
            run[pid] = scores
    return run


def evaluate_reviewer_matching(
    hard_qrels: Mapping[str, Mapping[str, int]],
    soft_qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = ("P_5", "P_10"),
) -> dict[str, float]:
    """``{"hard_P_5", "hard_P_10", "soft_P_5", "soft_P_10"}`` (x 100), each over the judged papers."""
    out: dict[str, float] = {}
    for label, qrels in (("hard", hard_qrels), ("soft", soft_qrels)):
        sub_run = {q: s for q, s in run.items() if q in qrels}
        for name, value in trec_measures(qrels, sub_run, metrics).items():
            out[f"{label}_{name}"] = value
    return out
