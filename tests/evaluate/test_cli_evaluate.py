"""``sciembed evaluate`` and ``python -m sciembed.evaluate``."""

import json

from typer.testing import CliRunner

from sciembed.cli import app

runner = CliRunner()


def test_cli_evaluate_compares_models_and_writes_reports(unseen_task_file, tiny_model_folder, tmp_path):
    out = tmp_path / "out"
    args = [
        "evaluate",
        "--model",
        str(tiny_model_folder),
        "--model",
        "bm25",
        "--model",
        "random",
        "--tasks",
        str(unseen_task_file),
        "--output",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert [m["name"] for m in report["models"]] == [str(tiny_model_folder), "bm25", "random"]
    assert report["models"][0]["info"]["formats"] == ["proximity", "classification", "regression", "adhoc_query"]
    assert all(r["status"] == "ok" for r in report["models"][0]["tasks"].values())
    table = (out / "results.md").read_text()
    assert "| bm25 | random |" in table and table in result.output
    assert (out / "results.png").is_file()
    # the second run re-scores from the cache
    again = runner.invoke(
        app, [*args[:3], "--tasks", str(unseen_task_file), "--output", str(out), "--cache-dir", str(tmp_path / "cache")]
    )
    assert again.exit_code == 0, again.output
    assert json.loads((out / "results.json").read_text())["models"][0]["embeddings"]["computed"] == 0


def test_cli_rejects_invalid_task_lines_with_line_number(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"name": "a", "type": "proximity", "data": {"meta": "m"}}\n{"name": "b", "type": "bogus"}\n')
    result = runner.invoke(app, ["evaluate", "--model", "random", "--tasks", str(tasks), "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "tasks.jsonl:2:" in result.output


def test_module_entry_point_is_the_same_command(unseen_task_file, tmp_path):
    """``python -m sciembed.evaluate`` hands its arguments to ``sciembed evaluate``."""
    import subprocess
    import sys

    args = ["--model", "random", "--tasks", str(unseen_task_file), "--task", "Topic", "--task", "Lookup"]
    args += ["--output", str(tmp_path / "o"), "--no-cache"]
    done = subprocess.run([sys.executable, "-m", "sciembed.evaluate", *args], capture_output=True, text=True)
    code = done.returncode
    assert code == 0, done.stderr
    assert "| Topic |" in done.stdout
    report = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [t["name"] for t in report["tasks"]] == ["Topic", "Lookup"]
