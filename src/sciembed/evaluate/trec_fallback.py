"""trec_eval's per-query measures in numpy, for machines without ``pytrec_eval`` (the GPU machine).

Only what sciembed's tasks use: ``map``, ``ndcg``, ``P_k``, ``recall_k``, ``ndcg_cut_k``, with
trec_eval's conventions: documents ranked by decreasing score, ties by decreasing document id;
relevant means a judgement >= 1; the gains of ``ndcg`` are the graded judgements; queries absent
from the qrels are not evaluated. ``tests/evaluate/test_metrics.py`` checks equality with pytrec_eval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_CUT = re.compile(r"^(P|recall|ndcg_cut)_(\d+)$")


def supported(measure: str) -> bool:
    return measure in ("map", "ndcg") or _CUT.match(measure) is not None


def _ranked(scores: Mapping[str, float]) -> list[str]:
    by_id = sorted(scores, reverse=True)  # a stable sort keeps decreasing ids among equal scores
    return sorted(by_id, key=lambda d: -scores[d])


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)


def query_measure(judged: Mapping[str, int], scores: Mapping[str, float], measure: str) -> float:
    ranking = _ranked(scores)
    n_rel = sum(1 for r in judged.values() if r >= 1)
    rel = [judged.get(d, 0) for d in ranking]
    if measure == "map":
        hits, total = 0, 0.0
        for i, r in enumerate(rel):
            if r >= 1:
                hits += 1
                total += hits / (i + 1)
        return total / n_rel if n_rel else 0.0
    if measure == "ndcg":
        ideal = _dcg(sorted((max(r, 0) for r in judged.values()), reverse=True))
        return _dcg([max(r, 0) for r in rel]) / ideal if ideal > 0 else 0.0
    match = _CUT.match(measure)
    if match is None:
        raise ValueError(f"measure {measure!r} needs pytrec_eval (pip install pytrec-eval-terrier)")
    name, k = match.group(1), int(match.group(2))
    top = rel[:k]
    if name == "P":
        return sum(1 for r in top if r >= 1) / k
    if name == "recall":
        return sum(1 for r in top if r >= 1) / n_rel if n_rel else 0.0
    ideal = _dcg(sorted((max(r, 0) for r in judged.values()), reverse=True)[:k])
    return _dcg([max(r, 0) for r in top]) / ideal if ideal > 0 else 0.0


def evaluate(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], measures: set[str]
) -> dict[str, dict[str, float]]:
    """``{query: {measure: value}}`` like ``pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)``."""
    judged = {q: scores for q, scores in run.items() if q in qrels and scores}
    return {q: {m: query_measure(qrels[q], scores, m) for m in measures} for q, scores in judged.items()}
