"""scripts/generalise_table.py on results files written by the real ``sciembed evaluate`` run: two
random-vector models on four of the unseen task folders' tasks (one in-training)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SCRIPT_TASKS, load_script

from sciembed.evaluate.bootstrap import compare_models
from sciembed.evaluate.results import SuiteResult
from sciembed.train.multitask.release import check_release_rule

TASKS = SCRIPT_TASKS
N_BOOT = 200  # as two_model_results was run


def _script():
    return load_script("generalise_table")


@pytest.fixture
def results(two_model_results) -> Path:
    return two_model_results


def _manifest(folder: Path, runs: list[tuple[str, list[str]]]) -> Path:
    data = {
        "suite": "test",
        "starts": [{"model": "start", "name": "The Start"}],
        "runs": [
            {
                "file": name,
                "round": i + 1,
                "start": "start",
                "candidates": [
                    {"model": m, "label": f"C{i}{m}", "recipe": "r", **({"shipped": "v9"} if i == 0 else {})}
                    for m in models
                ],
            }
            for i, (name, models) in enumerate(runs)
        ],
    }
    path = folder / "candidates.json"
    path.write_text(json.dumps(data))
    return path


def _row(text: str, first: str) -> list[str]:
    """The cells after the first of each table row starting with ``first``; the first such row."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first:
            return cells[1:]
    raise AssertionError(f"no row {first!r}")


def test_table_holds_the_runs_scores_differences_and_verdicts(results, tmp_path, capsys):
    folder = tmp_path / "gen"
    folder.mkdir()
    shutil.copy(results, folder / "a.json")
    with open(results, "rb") as src, gzip.open(folder / "b.json.gz", "wb") as dst:
        dst.write(src.read())  # the same run, compressed: the start is identical in both
    manifest = _manifest(folder, [("a.json", ["cand"]), ("b.json.gz", ["cand"])])
    assert _script().main(["--manifest", str(manifest), "--out", str(folder / "all")]) == 0
    text = (folder / "all.md").read_text()
    assert (folder / "all.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    suite = SuiteResult.from_json(json.loads(results.read_text()))
    start, cand = suite.model("start"), suite.model("cand")
    for task in TASKS:
        fmt, train, metric, start_cell, cand_a, cand_b = _row(text, task)
        assert train == ("in" if task == "Year" else "out")
        assert metric == start.tasks[task].main_metric
        assert start_cell == f"{start.tasks[task].main_score:.2f}"
        assert cand_a == cand_b == f"{cand.tasks[task].main_score:.2f}"
    assert _row(text, "**avg in-training** (1 tasks)")[3] == f"{start.tasks['Year'].main_score:.2f}"
    out = np.mean([cand.tasks[t].main_score for t in ("Topic", "Related", "Lookup")])
    assert _row(text, "**avg out-of-training** (3 tasks)")[4] == f"{out:.2f}"
    assert _row(text, "**avg out-of-training search** (1 tasks)")[3] == f"{start.tasks['Lookup'].main_score:.2f}"

    # the differences are the bootstrap's, the verdict is the release rule's
    fresh = compare_models(suite, "start", ["cand"], n_boot=N_BOOT).models["cand"]
    for group, label in [
        ("out_of_training", "avg out-of-training (3 tasks)"),
        ("in_training", "avg in-training (1 tasks)"),
    ]:
        iv = fresh.average(group)
        cell = f"{iv.diff:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]"
        assert _row(text, label) == [cell if not (iv.above_zero or iv.below_zero) else f"**{cell}**"] * 2
    iv = fresh.average("out_of_training/proximity")
    assert f"{iv.diff:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]" in _row(text, "avg out-of-training proximity (1 tasks)")[0]
    rule = check_release_rule(results, "start", "cand", n_boot=N_BOOT)
    verdicts = _row(text, "release rule")
    assert all(v.startswith("passes" if rule.passed else "**refused**") for v in verdicts)
    assert _row(text, "shipped") == ["v9", "-"]
    assert "identical in every results file" in text and "Note:" not in text
    assert "Not in these tables" not in text

    shutil.copy(results, folder / "results-new.json")  # a new round's file, not yet in the manifest
    assert _script().main(["--manifest", str(manifest), "--out", str(folder / "all")]) == 0
    assert "(results files that the manifest does not list): `" in (folder / "all.md").read_text()
    assert "results-new.json is not in the manifest" in capsys.readouterr().err


def test_a_start_that_differs_between_files_is_reported_and_missing_comparisons_are_computed(results, tmp_path):
    folder = tmp_path / "gen"
    folder.mkdir()
    shutil.copy(results, folder / "a.json")
    data = json.loads(results.read_text())
    data["models"][0]["tasks"]["Related"]["main_score"] += 0.01
    del data["comparisons"]  # as an older results file: the script runs the bootstrap itself
    (folder / "b.json").write_text(json.dumps(data))
    manifest = _manifest(folder, [("a.json", ["cand"]), ("b.json", ["cand"])])
    assert _script().main(["--manifest", str(manifest), "--out", str(folder / "all")]) == 0
    text = (folder / "all.md").read_text()
    assert "main scores on 1 (largest absolute difference, score x 100: Related 0.0100)" in text
    assert "per-item results" not in text  # the items are the same, only the stored score was changed
    assert "200 / 1000 resamples" in text
    fresh = compare_models(SuiteResult.from_json(data), "start", ["cand"]).models["cand"]  # default 1000
    iv = fresh.average("overall")
    assert f"{iv.diff:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]" in _row(text, "avg overall (4 tasks)")[1]


def test_every_model_needs_a_label_and_docs_need_markers(results, tmp_path, capsys):
    folder = tmp_path / "gen"
    folder.mkdir()
    shutil.copy(results, folder / "a.json")
    script = _script()
    assert script.main(["--manifest", str(_manifest(folder, [("a.json", [])])), "--out", str(folder / "x")]) == 2
    assert "models ['cand'] are not in the manifest" in capsys.readouterr().err

    manifest = _manifest(folder, [("a.json", ["cand"])])
    docs = tmp_path / "DOCS.md"
    docs.write_text("# Doc\n\nno markers\n")
    assert script.main(["--manifest", str(manifest), "--out", str(folder / "x"), "--docs", str(docs)]) == 2
    assert "needs one line" in capsys.readouterr().err
    docs.write_text(f"# Doc\n\n{script.DOCS_BEGIN}\nold table\n{script.DOCS_END}\n\n## Next\n")
    assert script.main(["--manifest", str(manifest), "--out", str(folder / "x"), "--docs", str(docs)]) == 0
    text = docs.read_text()
    assert text.startswith(f"# Doc\n\n{script.DOCS_BEGIN}\n### All candidates on every task (suite test)")
    assert text.endswith(f"{script.DOCS_END}\n\n## Next\n") and "old table" not in text
    assert "](gen/x.png)" in text and (folder / "x.md").read_text() in text.replace("](gen/x.png)", "](x.png)")
