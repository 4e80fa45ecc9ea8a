"""scripts/format_fallback_whatif.py: a format served by the base carries the start's per-item results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_script


def _script():
    return load_script("format_fallback_whatif")


@pytest.fixture
def results(two_model_results) -> Path:
    return two_model_results


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if "`cand`" in line]


def _header(text: str) -> list[str]:
    return [c.strip() for c in text.splitlines()[0].strip("|").split("|")]


def test_the_variant_matches_the_start_where_every_embedding_is_the_base_s(results, tmp_path):
    raw = json.loads(results.read_text())
    out = tmp_path / "whatif.md"
    assert _script().main([str(results), "--format", "proximity,search", "--out", str(out)]) == 0
    original, variant = _rows(out.read_text())
    assert original[2] == "-" and variant[2] == "adhoc_query+proximity"
    header = _header(out.read_text())
    proximity = header.index("out-of-training/proximity")
    search = header.index("out-of-training/adhoc-search")
    classification = header.index("out-of-training/classification")
    # the start's own items where documents and queries both come from the base: no difference at all
    assert variant[proximity] == variant[search] == "+0.00 [+0.00, +0.00]"
    assert original[proximity] != variant[proximity] and original[search] != variant[search]
    assert variant[classification] == original[classification]  # every other format is the candidate's
    # the input file is left as it was
    assert json.loads(results.read_text()) == raw


def test_classification_alone_touches_only_classification_tasks(results, tmp_path):
    out = tmp_path / "whatif.md"
    assert _script().main([str(results), "--format", "classification", "--out", str(out)]) == 0
    original, variant = _rows(out.read_text())
    header = _header(out.read_text())
    classification = header.index("out-of-training/classification")
    search = header.index("out-of-training/adhoc-search")
    assert variant[classification] == "+0.00 [+0.00, +0.00]" != original[classification]
    assert variant[search] == original[search]


def test_proximity_alone_is_refused_because_search_documents_use_it(results, tmp_path, capsys):
    """Search tasks embed documents as proximity: with only proximity from the base their results
    would be those of a model never evaluated, so the what-if names them instead of guessing."""
    raw = json.loads(results.read_text())
    searches = [t["name"] for t in raw["tasks"] if t["type"] == "adhoc_search"]
    assert searches, "the fixture needs a search task"
    out = tmp_path / "whatif.md"
    assert _script().main([str(results), "--format", "proximity", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(results) in err
    assert all(name in err for name in searches) and "adhoc_query" in err
    assert not out.exists()


def test_bad_formats_and_files_are_one_line_errors(results, tmp_path, capsys):
    out = tmp_path / "whatif.md"
    assert _script().main([str(results), "--format", "no-such-format", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown task format" in err
    assert not out.exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert _script().main([str(broken), "--out", str(out)]) == 2
    assert str(broken) in capsys.readouterr().err


def test_several_results_files_in_one_call(results, tmp_path):
    out = tmp_path / "whatif.md"
    assert _script().main([str(results), str(results), "--format", "proximity,adhoc_query", "--out", str(out)]) == 0
    rows = _rows(out.read_text())
    assert len(rows) == 4 and rows[:2] == rows[2:]
