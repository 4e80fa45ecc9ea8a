"""The real default MiniLM on two sciembed-lite tasks (slow: marked integration)."""

import pytest

from sciembed.evaluate import load_tasks, run_benchmark


@pytest.mark.integration
def test_minilm_beats_random_on_lite_tasks(tmp_path):
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is missing")
    tasks = load_tasks(
        "lite", names=["MeSH (mesh_small)", "Search (search_small)"], data_root=SHARED_DATA, lite_dir=tmp_path / "lite"
    )
    report = run_benchmark(
        ["minilm", "random", "bm25"], tasks, output_dir=tmp_path / "out", cache_dir=tmp_path / "cache", device="cpu"
    )
    minilm, random_model, bm25 = (m.tasks for m in report.models)
    for name in ("MeSH (mesh_small)", "Search (search_small)"):
        assert minilm[name].ok
        assert minilm[name].main_score > random_model[name].main_score + 10
    assert bm25["Search (search_small)"].main_score > random_model["Search (search_small)"].main_score
