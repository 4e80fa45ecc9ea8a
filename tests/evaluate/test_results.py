"""Typed results: every results.json written by earlier versions reads back and writes the same JSON."""

from __future__ import annotations

import json
import math

import pytest
from conftest import REPO_ROOT

from sciembed.evaluate import SuiteResult, TaskResult, read_results
from sciembed.evaluate.benchmark import markdown_table
from sciembed.evaluate.results import ItemScores

OLD_RESULTS = sorted((REPO_ROOT / "benchmarks" / "results").glob("*/results*.json"))


@pytest.mark.parametrize("path", OLD_RESULTS, ids=[f"{p.parent.name}/{p.name}" for p in OLD_RESULTS])
def test_results_of_earlier_versions_round_trip(path):
    data = json.loads(path.read_text())
    suite = read_results(path)
    assert suite.to_json() == data
    assert [m.name for m in suite.models] == [m["name"] for m in data["models"]]
    model = suite.ok_models[0]
    first = data["tasks"][0]
    result = model.tasks[first["name"]]
    assert result.task == first["name"] and result.task_type == first["type"]
    assert result.in_training == first["in_training"]
    table = markdown_table(suite)  # the report renders from an old file
    assert f"| {first['name']} |" in table


def test_old_results_files_exist():
    assert len(OLD_RESULTS) >= 3  # the round trip above must not pass by testing nothing


def test_task_result_json_by_status_and_nan_as_null():
    scored = TaskResult(
        task="t",
        status="ok",
        main_metric="map",
        main_score=float("nan"),
        metrics={"map": float("nan"), "ndcg": 50.0},
        items=ItemScores(["q1", "q2"], scores=[1.0, 0.0]),
        cv_seeds=3,
        timing={"total_s": 1.0},
    )
    data = scored.to_json()
    assert data["main_score"] is None and data["metrics"] == {"map": None, "ndcg": 50.0}
    assert data["items"] == {"ids": ["q1", "q2"], "scores": [1.0, 0.0]} and data["cv_seeds"] == 3
    back = TaskResult.from_json(json.loads(json.dumps(data)), {"name": "t", "type": "proximity"})
    assert math.isnan(back.main_score) and back.n_items == 2 and back.items.select(["q2"]).scores == [0.0]
    assert back.to_json() == data
    skipped = TaskResult(task="t", status="skipped", reason="no ranking").to_json()
    assert skipped == {"status": "skipped", "reason": "no ranking", "timing": {}}


def test_a_suite_finds_models_by_name_or_spec():
    suite = SuiteResult.from_json(
        {"tasks": [], "models": [{"name": "m", "spec": "runs/x/model", "status": "ok", "tasks": {}}]}
    )
    assert suite.model("m") is suite.model("runs/x/model") is suite.models[0]
    assert suite.model("other") is None
