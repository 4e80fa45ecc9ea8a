"""The release rule against the starting model, on synthetic results.json files with per-item data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sciembed.cli import app
from sciembed.train.multitask.release import check_release_rule

FORMATS = {"c": "classification", "r": "regression", "p": "proximity", "s": "adhoc_search"}


def _results(tmp_path, shifts: dict[str, float], noise: float = 1.0, n: int = 400, in_shift: float = 3.0):
    """Two out-of-training ranking tasks per format and one in-training task; the candidate's per-item
    scores are the base's plus ``shifts[format]`` plus Gaussian noise."""
    rng = np.random.default_rng(0)
    tasks, base_tasks, cand_tasks = [], {}, {}
    specs = [(f"{k}{i}", t, False) for k, t in FORMATS.items() for i in (1, 2)] + [("in1", "proximity", True)]
    for name, kind, inside in specs:
        shift = in_shift if inside else shifts.get(name[0], 0.0)
        tasks.append({"name": name, "type": kind, "kind": kind, "main_metric": "map", "in_training": inside})
        base = rng.uniform(20, 80, n)
        cand = base + shift + rng.normal(0, noise, n)
        ids = [f"{name}-{i}" for i in range(n)]
        base_tasks[name] = {"status": "ok", "main_score": base.mean(), "items": {"ids": ids, "scores": base.tolist()}}
        cand_tasks[name] = {"status": "ok", "main_score": cand.mean(), "items": {"ids": ids, "scores": cand.tolist()}}
    data = {
        "tasks": tasks,
        "models": [
            {"name": "minilm", "spec": "minilm", "status": "ok", "tasks": base_tasks},
            {"name": "runs/a/model", "spec": "runs/a/model", "status": "ok", "tasks": cand_tasks},
        ],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return path


def test_a_clear_gain_everywhere_passes(tmp_path):
    rule = check_release_rule(
        _results(tmp_path, {"c": 1.0, "r": 1.0, "p": 1.0, "s": 1.0}), "minilm", "runs/a/model", 300
    )
    assert rule.passed and rule.failures == []
    assert rule.out_of_training.diff == pytest.approx(1.0, abs=0.05) and rule.out_of_training.low > 0
    assert set(rule.formats) == set(FORMATS.values()) and rule.in_training.diff == pytest.approx(3.0, abs=0.1)
    assert "release rule passes" in rule.summary()


def test_a_gain_within_noise_is_refused(tmp_path):
    rule = check_release_rule(_results(tmp_path, {"c": 0.05}, noise=20.0), "minilm", "runs/a/model", 300)
    assert not rule.passed
    assert rule.out_of_training.low <= 0 < rule.out_of_training.high
    assert "not above noise" in rule.summary()


def test_one_format_lower_beyond_noise_is_refused_despite_a_higher_average(tmp_path):
    rule = check_release_rule(
        _results(tmp_path, {"c": 4.0, "p": 4.0, "s": 4.0, "r": -2.0}), "minilm", "runs/a/model", 300
    )
    assert rule.out_of_training.low > 0  # the average alone would pass
    assert not rule.passed and len(rule.failures) == 1
    assert rule.formats["regression"].high < 0 and "regression out-of-training average" in rule.failures[0]


def test_a_format_lower_within_noise_does_not_block(tmp_path):
    rule = check_release_rule(
        _results(tmp_path, {"c": 3.0, "p": 3.0, "s": 3.0, "r": -0.02}, noise=5.0), "minilm", "runs/a/model", 300
    )
    assert rule.formats["regression"].diff < 0 <= rule.formats["regression"].high
    assert rule.passed


def test_missing_scores_items_or_models_are_errors(tmp_path):
    path = _results(tmp_path, {"c": 1.0})
    data = json.loads(path.read_text())
    with pytest.raises(ValueError, match="no model 'nope'"):
        check_release_rule(path, "nope", "runs/a/model")
    data["models"][1]["tasks"]["r1"] = {"status": "failed", "reason": "x"}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no score for 'r1'"):
        check_release_rule(path, "minilm", "runs/a/model")
    data["models"][1]["tasks"]["r1"] = {"status": "ok", "main_score": 1.0}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no per-item data"):
        check_release_rule(path, "minilm", "runs/a/model")


def test_cli_check_only_exit_codes(tmp_path):
    runner = CliRunner()
    good = _results(tmp_path, {"c": 1.0, "r": 1.0, "p": 1.0, "s": 1.0})
    args = ["train", "release", "--from", "runs/a/model", "--check", str(good), "--base", "minilm", "--check-only"]
    result = runner.invoke(app, [*args, "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    assert "release rule passes" in result.output and "out-of-training search" in result.output
    (tmp_path / "bad").mkdir()
    bad = _results(tmp_path / "bad", {"c": 4.0, "p": 4.0, "s": 4.0, "r": -2.0})
    args[args.index(str(good))] = str(bad)
    result = runner.invoke(app, [*args, "--bootstrap", "200"])
    assert result.exit_code != 0 and "refused: regression" in result.output and "not released" in result.output
    result = runner.invoke(app, ["train", "release", "--from", "x", "--check", str(good)])
    assert result.exit_code != 0 and "--base" in result.output


def test_cli_release_goes_to_models_slash_its_name_by_default(tmp_path, tiny_model_folder, monkeypatch):
    """`--name sciembed-mpnet` without `--to` must not replace models/sciembed-minilm."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "release", "--from", str(tiny_model_folder), "--name", "sciembed-mpnet"])
    assert result.exit_code == 0, result.output
    released = tmp_path / "models" / "sciembed-mpnet"
    assert json.loads((released / "sciembed.json").read_text())["name"] == "sciembed-mpnet"
    assert not (tmp_path / "models" / "sciembed-minilm").exists()
