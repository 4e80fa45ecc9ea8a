"""`sciembed compare`: alignment recovers a rotated copy, neighbour overlap sees real changes."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sciembed.cli import app
from sciembed.embed.compare import compare_vectors, procrustes_rotation
from sciembed.embed.writer import embedding_table

runner = CliRunner()


def _vectors(n=200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32)


def _rotation(d, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q.astype(np.float32)


def test_procrustes_recovers_a_rotation():
    a = _vectors()
    r = _rotation(16)
    np.testing.assert_allclose(procrustes_rotation(a @ r, a), r.T, atol=1e-4)


def test_a_rotated_copy_is_the_same_embedding():
    a = _vectors()
    ids = [f"p{i}" for i in range(len(a))]
    result = compare_vectors(ids, a, ids[::-1], (a @ _rotation(16))[::-1], k=5)  # other order, rotated
    assert len(result.ids) == 200 and result.only_a == result.only_b == 0
    assert result.cosine.min() > 0.9999
    assert result.cosine_unaligned.mean() < 0.5  # without alignment the rotation looks like a change
    assert result.overlap.min() == 1.0  # a rotation keeps every neighbour


def test_noise_lowers_cosine_and_overlap_and_other_dimensions_still_compare():
    a = _vectors()
    ids = [f"p{i}" for i in range(len(a))]
    noisy = a + np.random.default_rng(5).normal(scale=0.8, size=a.shape).astype(np.float32)
    result = compare_vectors(ids, a, ids, noisy, k=10)
    assert 0.5 < result.cosine.mean() < 0.95 and result.overlap.mean() < 0.8
    wider = compare_vectors(ids, a, ids[:150], np.hstack([a, a])[:150], k=10)
    assert wider.cosine is None and wider.dimensions == (16, 32) and wider.only_a == 50
    assert wider.overlap.min() == 1.0  # [a, a] has exactly a's cosine neighbours
    with pytest.raises(ValueError, match="share 0 paper ids"):
        compare_vectors(ids, a, ["x", "y"], a[:2])


def test_cli_writes_png_markdown_and_json(tmp_path):
    import pyarrow.parquet as pq

    a = _vectors(n=120)
    ids = [f"p{i}" for i in range(len(a))]
    pq.write_table(embedding_table(ids, a), tmp_path / "a.parquet")
    pq.write_table(embedding_table(ids, a @ _rotation(16)), tmp_path / "b.parquet")
    out = tmp_path / "report"
    result = runner.invoke(app, ["compare", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "| cosine(A, B aligned by orthogonal Procrustes) | 1.0000" in result.output
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "compare.md").read_text().strip() == result.output.strip()
    summary = json.loads((out / "compare.json").read_text())
    assert summary["papers"] == 120 and summary["knn_overlap"]["min"] == 1.0
    as_json = runner.invoke(
        app, ["compare", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"), "-o", str(out), "--json"]
    )
    assert json.loads(as_json.stdout)["cosine_aligned"]["min"] > 0.9999
    nope = str(tmp_path / "nope.parquet")
    missing = runner.invoke(app, ["compare", str(tmp_path / "a.parquet"), nope, "-o", str(out)])
    assert missing.exit_code == 2 and "nope.parquet" in missing.output
