"""A sciembed model runs in MTEB offline (MTEB's own small local tasks), with the format per input type."""

from __future__ import annotations

import mteb
import numpy as np
import pytest
from conftest import make_tiny_model
from mteb.mocks.mock_tasks.classification import MockClassificationTask
from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask

from sciembed.integrations.mteb import SciEmbedMTEB, format_for

FORMATS = ("proximity", "classification", "regression", "adhoc_query")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MTEB_CACHE", str(tmp_path / "mteb-cache"))


def test_format_table():
    assert format_for("Retrieval", "query") == "adhoc_query"
    assert format_for("Retrieval", "document") == "proximity"
    assert format_for("Classification", None) == "classification"
    assert format_for("Clustering", None) == "classification"
    assert format_for("Regression", None) == "regression"
    assert format_for("STS", None) == "proximity"
    assert format_for("PairClassification", None) == "proximity"
    assert format_for("STS", None, {"STS": "[QRY]"}) == "adhoc_query"


def test_retrieval_and_classification_tasks_run_with_the_right_formats():
    model = SciEmbedMTEB(make_tiny_model(formats=FORMATS))
    results = mteb.evaluate(model, [MockRetrievalTask(), MockClassificationTask()], cache=None)
    scores = {r.task_name: r.get_score() for r in results}
    assert set(scores) == {"MockRetrievalTask", "MockClassificationTask"}
    assert all(np.isfinite(s) and 0.0 <= s <= 1.0 for s in scores.values())
    used = {(task, prompt): fmt for task, prompt, fmt in model.calls}
    assert used[("MockRetrievalTask", "query")] == "adhoc_query"
    assert used[("MockRetrievalTask", "document")] == "proximity"
    assert set(fmt for (task, _), fmt in used.items() if task == "MockClassificationTask") == {"classification"}


def test_retrieval_scores_follow_the_vectors():
    """MTEB's ndcg from our vectors equals ndcg computed from the same vectors by hand."""
    task = MockRetrievalTask()
    task.load_data()
    split = task.dataset["default"]["test"]
    model = SciEmbedMTEB(make_tiny_model(formats=FORMATS))
    (result,) = mteb.evaluate(model, [task], cache=None)
    queries = model.model.encode(list(split["queries"]["text"]), format="adhoc_query")
    corpus = [{"id": r["id"], "title": r.get("title") or "", "abstract": r["text"]} for r in split["corpus"]]
    documents = model.model.encode(corpus, format="proximity")
    sims = queries @ documents.T / np.outer(np.linalg.norm(queries, axis=1), np.linalg.norm(documents, axis=1))
    doc_ids = list(split["corpus"]["id"])
    hits = []
    for row, qid in enumerate(split["queries"]["id"]):
        ranked = [doc_ids[i] for i in np.argsort(-sims[row])]
        relevant = {d for d, score in split["relevant_docs"][qid].items() if score > 0}
        hits.append(next(i for i, d in enumerate(ranked) if d in relevant))
    expected_mrr = float(np.mean([1.0 / (h + 1) for h in hits]))
    assert result.scores["test"][0]["mrr_at_10"] == pytest.approx(expected_mrr, abs=1e-4)
