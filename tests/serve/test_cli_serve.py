"""`sciembed index build/add/info` and `sciembed serve` as a real uvicorn process on a loopback port."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from servehelpers import (  # noqa: F401  (fixtures)
    N_PAPERS,
    corpus_records,
    index_folder,
    papers_file,
    running_server,
    serve_model_folder,
    tiny_encoder,
)
from typer.testing import CliRunner

from sciembed.cli import app

runner = CliRunner()


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_build_from_embeddings_then_add_incrementally(tmp_path, serve_model_folder, tiny_encoder):
    records = corpus_records()
    first = write_jsonl(tmp_path / "first.jsonl", records[:40])
    parquet = tmp_path / "first.parquet"
    result = runner.invoke(app, ["embed", str(first), str(parquet), "--model", str(serve_model_folder)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "idx"
    result = runner.invoke(
        app, ["index", "build", str(first), str(parquet), str(out), "--model", str(serve_model_folder)]
    )
    assert result.exit_code == 0, result.output
    assert "40 papers added" in result.output and "embedded" not in result.output
    overlap = write_jsonl(tmp_path / "more.jsonl", records[30:])
    result = runner.invoke(app, ["index", "add", str(out), str(overlap)])  # the model comes from index.json
    assert result.exit_code == 0, result.output
    assert f"{N_PAPERS - 40} papers added, 10 already present" in result.output
    info = json.loads(runner.invoke(app, ["index", "info", str(out)]).output)
    assert (
        info["count"] == N_PAPERS
        and info["kind"] == "flat"
        and info["model"]["fingerprint"] == tiny_encoder.fingerprint
    )
    from sciembed.serve import PaperIndex

    index = PaperIndex.open(out)
    row = index.resolve(["A00-1043"])[0]
    np.testing.assert_allclose(
        index.vectors("proximity", [row])[row], tiny_encoder.encode([records[1]])[0], rtol=1e-4, atol=1e-5
    )


def test_refuses_embeddings_of_another_model_and_bad_input(tmp_path, serve_model_folder, tiny_model_folder):
    records = corpus_records()[:12]
    papers = write_jsonl(tmp_path / "p.jsonl", records)
    other = tmp_path / "other.parquet"
    assert runner.invoke(app, ["embed", str(papers), str(other), "--model", str(tiny_model_folder)]).exit_code == 0
    result = runner.invoke(
        app, ["index", "build", str(papers), str(other), str(tmp_path / "i"), "-m", str(serve_model_folder)]
    )
    assert result.exit_code == 2 and "another model" in result.output and "Traceback" not in result.output
    assert "fingerprint" in result.output  # refused by the file's metadata, before any embedding
    assert not any((tmp_path / "i").glob("vectors-*.g000001.faiss"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(records[0]) + "\n{broken\n")
    result = runner.invoke(app, ["index", "build", str(bad), str(tmp_path / "j"), "-m", str(serve_model_folder)])
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output
    result = runner.invoke(app, ["index", "add", str(tmp_path / "nowhere"), str(papers)])
    assert result.exit_code == 2 and "not a sciembed index" in result.output
    result = runner.invoke(app, ["index", "build", str(papers), "a", "b", "c"])
    assert result.exit_code == 2


def test_real_uvicorn_server_on_loopback(index_folder, serve_model_folder):
    keys = ("--api-key", "k1", "--api-key", "k2:1000")
    with running_server(index_folder, serve_model_folder, *keys, key="k1") as base:
        with httpx.Client(base_url=base, headers={"x-api-key": "k2"}, timeout=30) as http:
            search = http.get("/graph/v1/paper/search", params={"query": "statistical parsing", "limit": 3}).json()
            assert len(search["data"]) == 3 and search["next"] == 3
            batch = http.post("/graph/v1/paper/batch", json={"ids": ["A00-1043", "zzz"]}).json()
            assert batch[0]["paperId"] == "A00-1043" and batch[1] is None
            recs = http.get("/recommendations/v1/papers/forpaper/A00-1043", params={"limit": 4}).json()
            assert len(recs["recommendedPapers"]) == 4
            assert http.get("/").status_code == 200
        assert httpx.get(f"{base}/graph/v1/paper/A00-1043").status_code == 403


def test_build_writes_the_vector_index_at_doubling_checkpoints(tmp_path, papers_file, serve_model_folder):
    """60 papers in chunks of 16: commits at 16, 32 and the end (not after every chunk); an approximate
    index also stores its held-out calibration queries (indexed titles embedded as search queries)."""
    out = tmp_path / "idx"
    build = ["index", "build", str(papers_file), str(out), "--model", str(serve_model_folder), "--chunk-size", "16"]
    result = runner.invoke(app, [*build, "--kind", "ivfpqfs"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["index", "info", str(out)]).output)
    assert info["count"] == N_PAPERS and info["kind"] == "ivfpqfs"
    assert info["generation"] == 1 + 3  # the training generation, then 3 commits (4 before: one per chunk)
    assert sorted(p.name for p in out.glob("vectors-*.faiss")) == [f"vectors-proximity.g{info['generation']:06d}.faiss"]
    from sciembed.serve import PaperIndex

    with np.load(out / "calibration-queries.npz") as held_out:
        assert held_out["vectors"].shape[0] == 16  # the first chunk's titles (at most 300)
        ids = [str(x) for x in held_out["paper_ids"]]
    index = PaperIndex.open(out)
    assert None not in index.resolve(ids)  # titles of the first chunk's papers
    hits = index.search("proximity", index.vectors("proximity", [5])[5], 3)[0]
    assert hits[0].row_id == 5 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    index.close()


def test_several_worker_processes_serve_the_same_index(index_folder, serve_model_folder):
    """`--workers 2`: uvicorn's supervisor and two worker processes, each opening the index read-only."""
    with running_server(index_folder, serve_model_folder, "--workers", "2") as base:
        answers = [
            httpx.get(f"{base}/graph/v1/paper/search", params={"query": "parsing", "fields": "title"}, timeout=30)
            for _ in range(6)
        ]
        assert {a.status_code for a in answers} == {200}
        assert len({json.dumps(a.json()) for a in answers}) == 1  # every worker answers alike
        assert httpx.get(f"{base}/health", timeout=10).json()["papers"] == N_PAPERS
