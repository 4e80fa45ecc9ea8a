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


def test_the_variant_matches_the_start_on_that_format_and_the_candidate_elsewhere(results, tmp_path):
    raw = json.loads(results.read_text())
    out = tmp_path / "whatif.md"
    assert _script().main([str(results), "--format", "proximity", "--out", str(out)]) == 0
    original, variant = _rows(out.read_text())
    assert original[2] == "-" and variant[2] == "proximity"
    header = [c.strip() for c in out.read_text().splitlines()[0].strip("|").split("|")]
    proximity = header.index("out-of-training/proximity")
    search = header.index("out-of-training/adhoc-search")
    assert variant[proximity] == "+0.00 [+0.00, +0.00]"  # the start's own items: no difference at all
    assert original[proximity] != variant[proximity]  # the candidate itself differs from the start there
    assert variant[search] == original[search]  # every other format is the candidate's
    # the input file is left as it was
    assert json.loads(results.read_text()) == raw


def test_a_results_file_without_that_format_is_a_one_line_error(results, tmp_path, capsys):
    out = tmp_path / "whatif.md"
    assert _script().main([str(results), "--format", "no-such-format", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(results) in err and "no task of format" in err
    assert not out.exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert _script().main([str(broken), "--out", str(out)]) == 2
    assert str(broken) in capsys.readouterr().err
