"""Distributed embedding on a real local Ray cluster on loopback, shared by every test of this module.

Ray starts once here (~10 s on 2 cores); each job then starts its model workers. The cluster has 4
logical CPUs on the 2 cores, so that the workers of a killed driver, until Ray reaps them, cannot
starve the job that resumes it, and 2 logical GPUs (no real ones: only to check that the actor pool
gives each worker one GPU of its own; every embedding job here runs with ``device="cpu"``).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sciembed.embed import embed_file, read_embeddings
from sciembed.embed.metadata import METADATA_KEY, metadata_for, read_metadata
from sciembed.embed.writer import embedding_schema
from sciembed.model import load_model, save_model

# Ray binds a local cluster to the machine's routable address unless told that this is a one-machine
# setup; tests and benchmarks here must talk over loopback only. (Read when ray is imported.)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'sciembed[ray]')")

from conftest import REPO_ROOT, make_tiny_model  # noqa: E402

from sciembed.scale import ScaleOptions, embed_shards  # noqa: E402
from sciembed.scale.job import cluster_plan, model_stage  # noqa: E402

OPTIONS = ScaleOptions(chunk_size=8, workers=2, device="cpu")
ONE_WORKER = ScaleOptions(chunk_size=8, workers=1, device="cpu")  # same output: it does not depend on workers


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def _record(shard: int, i: int) -> dict:
    return {"paper_id": f"s{shard}-{i}", "title": f"Paper {i} of shard {shard}", "abstract": "tokens " * (i % 9 + 1)}


def _write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(lines)
    else:
        path.write_text(lines)
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Four shards: plain, gzipped and Parquet; 20-30 papers each."""
    folder = tmp_path_factory.mktemp("shards")
    _write_jsonl(folder / "a.jsonl", [_record(0, i) for i in range(30)])
    _write_jsonl(folder / "b.jsonl.gz", [_record(1, i) for i in range(25)], gz=True)
    _write_jsonl(folder / "c.jsonl", [_record(2, i) for i in range(20)])
    pq.write_table(pa.Table.from_pylist([_record(3, i) for i in range(27)]), folder / "d.parquet")
    return folder


def _all_input_papers(folder: Path) -> list[dict]:
    from sciembed.data import read_papers

    return [p.to_dict() for path in sorted(folder.iterdir()) for p in read_papers(path)]


@pytest.fixture(scope="module")
def model_folder(tiny_model_folder) -> Path:
    return tiny_model_folder


@pytest.fixture(scope="module")
def reference(cluster, shards, model_folder, tmp_path_factory):
    """An uninterrupted run: what every crashed-and-resumed run must end with."""
    out = tmp_path_factory.mktemp("reference") / "out"
    report = embed_shards(str(shards / "*"), out, model=str(model_folder), options=OPTIONS, show_progress=False)
    return out, report


def _output_tables(out: Path) -> dict[str, pa.Table]:
    return {p.name: pq.read_table(p) for p in sorted((out / "data").glob("*.parquet"))}


def _ids_and_vectors(out: Path) -> tuple[list[str], np.ndarray]:
    tables = list(_output_tables(out).values())
    ids = [i for t in tables for i in t.column("paper_id").to_pylist()]
    vectors = np.concatenate([np.asarray(t.column("embedding").to_pylist(), dtype=np.float32) for t in tables])
    return ids, vectors


def test_every_valid_id_once_with_the_single_process_vectors(reference, shards, model_folder):
    out, report = reference
    papers = _all_input_papers(shards)
    ids, vectors = _ids_and_vectors(out)
    assert sorted(ids) == sorted(p["paper_id"] for p in papers) and len(set(ids)) == len(ids) == 102
    model = load_model(str(model_folder))
    expected = dict(zip([p["paper_id"] for p in papers], model.encode(papers, device="cpu"), strict=True))
    np.testing.assert_allclose(vectors, np.stack([expected[i] for i in ids]), atol=1e-5)
    for table in _output_tables(out).values():
        assert table.schema == embedding_schema(model.hidden_size)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["rows"] == manifest["counts"]["papers_read"] == 102 == report.rows
    assert manifest["job"]["model_fingerprint"] == model.fingerprint
    listed = sorted(o["file"] for i in manifest["inputs"] for o in i["outputs"])
    assert listed == sorted(f"data/{name}" for name in _output_tables(out))
    by_input = {Path(i["input"]["path"]).name: sum(o["rows"] for o in i["outputs"]) for i in manifest["inputs"]}
    assert by_input == {"a.jsonl": 30, "b.jsonl.gz": 25, "c.jsonl": 20, "d.parquet": 27}
    assert report.computed_chunks == 4 + 4 + 3 + 4 and report.workers == 2


def test_every_shard_carries_the_parquet_metadata_of_sciembed_embed(reference, shards, model_folder, tmp_path):
    out, report = reference
    single = tmp_path / "single.parquet"
    embed_file(load_model(str(model_folder)), shards / "a.jsonl", single, device="cpu", show_progress=False)
    expected = read_metadata(single)
    assert expected is not None and expected.model == "tiny" and expected.adapter == "proximity"
    raw = pq.read_schema(single).metadata[METADATA_KEY]
    files = sorted((out / "data").glob("*.parquet"))
    for path in files:
        assert read_metadata(path) == expected, path.name  # every field, the fingerprint included
        assert pq.read_schema(path).metadata[METADATA_KEY] == raw
    assert report.manifest["embedding_metadata"] == expected.to_json()


def test_rerun_of_a_finished_job_computes_nothing(reference, shards, model_folder):
    out, _ = reference
    before = (out / "manifest.json").read_bytes()
    again = embed_shards(str(shards / "*"), out, model=str(model_folder), options=OPTIONS, show_progress=False)
    assert again.computed_chunks == 0 and again.resumed_units == 4
    assert (out / "manifest.json").read_bytes() == before


def test_refuses_to_mix_another_model_or_format(reference, shards, model_folder, tmp_path):
    out, _ = reference
    other = tmp_path / "other-model"
    save_model(make_tiny_model(seed=7, formats=("proximity", "classification")), other)
    with pytest.raises(ValueError, match="model_fingerprint"):
        embed_shards(str(shards / "*"), out, model=str(other), options=OPTIONS, show_progress=False)
    with pytest.raises(ValueError, match="embedding_format"):
        embed_shards(
            str(shards / "*"),
            out,
            model=str(other),
            options=ScaleOptions(chunk_size=8, device="cpu", format="classification"),
            show_progress=False,
        )
    with pytest.raises(ValueError, match="chunk_size"):
        embed_shards(str(shards / "*"), out, options=ScaleOptions(chunk_size=9, device="cpu"), show_progress=False)
    # Options that change the vectors (if only by rounding) are part of the job: never mixed on resume.
    for change, differs in (
        ({"dtype": "bf16"}, "dtype"),
        ({"batch_size": 16}, "batch_size"),
        ({"compile": True}, "compile"),
    ):
        with pytest.raises(ValueError, match=rf"differs in: {differs}\)"):
            embed_shards(str(shards / "*"), out, str(model_folder), replace(OPTIONS, **change), show_progress=False)


def test_one_gpu_of_its_own_per_model_worker(cluster):
    """On a cluster with GPUs the plan is one actor per GPU holding ``num_gpus=1``; each actor then
    sees exactly its GPU (as ``cuda:0``). The GPUs here are logical ones: the probe reads what Ray
    gives each actor, as a model worker's ``torch.device("cuda")`` would."""

    class GpuProbe:
        def __init__(self):
            self.gpus = [str(g) for g in ray.get_gpu_ids()]
            self.visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")

        def __call__(self, row):
            time.sleep(0.2)  # let both actors take rows
            return {"item": row["item"], "pid": os.getpid(), "gpus": ",".join(self.gpus), "visible": self.visible}

    plan = cluster_plan(ScaleOptions(), ray.cluster_resources())
    assert (plan.device, plan.workers, plan.gpus_per_worker) == ("cuda", 2, 1.0)
    items = ray.data.from_items([{"item": i} for i in range(12)], override_num_blocks=12)
    rows = model_stage(items, GpuProbe, {}, plan).take_all()
    assert sorted(r["item"] for r in rows) == list(range(12))
    by_pid = {r["pid"]: r["gpus"] for r in rows}
    assert all(r["gpus"] in ("0", "1") and r["visible"] == r["gpus"] for r in rows)  # one GPU each
    assert len(set(by_pid.values())) == len(by_pid)  # no two workers share a GPU


def test_onnx_cpu_workers_on_the_export_that_the_driver_makes_once(cluster, shards, model_folder, reference, tmp_path):
    """``--backend onnx -m MODEL_FOLDER``: the driver exports the model once (``load_model``'s
    automatic export), every CPU worker loads that export; the data files are what the same
    encoder writes through ``sciembed embed``."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    folder = save_model(make_tiny_model(seed=3, formats=("proximity",)), tmp_path / "model")  # one graph: quick
    inputs = [str(shards / "a.jsonl"), str(shards / "c.jsonl")]
    options = ScaleOptions(chunk_size=8, workers=1, backend="onnx")
    out = tmp_path / "out"
    report = embed_shards(inputs, out, model=str(folder), options=options, show_progress=False)
    job = report.manifest["job"]
    assert (job["backend"], job["device_type"], job["dtype"]) == ("onnx", "cpu", "onnx-int8")
    assert len(list((folder / "exports").glob("*/onnx-*"))) == 1  # exported once, by the driver
    encoder = load_model(str(folder), backend="onnx")  # the same (cached) export
    single = tmp_path / "single.parquet"
    embed_file(encoder, shards / "a.jsonl", single, chunk_size=8, show_progress=False)
    assert read_metadata(single) == metadata_for(encoder, "proximity")
    for path in (out / "data").glob("*.parquet"):
        assert read_metadata(path) == read_metadata(single)
    ids, vectors = _ids_and_vectors(out)
    papers = {p["paper_id"]: p for p in _all_input_papers(shards)}
    assert sorted(ids) == sorted(i for i in papers if i.startswith(("s0-", "s2-")))
    # int8 with dynamic activation scales: a vector depends on its batch, so the same chunks give
    # the same vectors as `sciembed embed`, and other batches agree to int8 precision only
    got = dict(zip(ids, vectors, strict=True))
    single_ids, single_vectors = read_embeddings(single)
    np.testing.assert_allclose(np.stack([got[i] for i in single_ids]), single_vectors, atol=1e-6)
    again = encoder.encode([papers[i] for i in ids])
    assert ((again * vectors).sum(1) / np.linalg.norm(again, axis=1) / np.linalg.norm(vectors, axis=1)).min() > 0.999
    with pytest.raises(ValueError, match="backend"):  # the same folder with the PyTorch model: refused
        embed_shards(inputs, out, model=str(folder), options=replace(options, backend="torch"), show_progress=False)


def _same_result(out: Path, reference: Path) -> None:
    assert (out / "manifest.json").read_bytes() == (reference / "manifest.json").read_bytes()
    got, want = _output_tables(out), _output_tables(reference)
    assert list(got) == list(want)
    for name in want:
        assert got[name].equals(want[name]), name


def test_killed_worker_is_retried_without_restarting_the_job(cluster, shards, model_folder, reference, tmp_path):
    marker = tmp_path / "crashed"
    out = tmp_path / "out"
    report = embed_shards(
        str(shards / "*"),
        out,
        model=str(model_folder),
        options=ONE_WORKER,
        show_progress=False,
        crash_marker=str(marker),
    )
    assert marker.is_file() and int(marker.read_text()) != os.getpid()  # a worker process really died (SIGKILL)
    assert report.computed_chunks == 15 and report.resumed_units == 0
    _same_result(out, reference[0])


def _run_cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "sciembed", "embed", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_killed_driver_resumes_to_the_same_result(cluster, shards, model_folder, reference, tmp_path):
    out = tmp_path / "out"
    args = [str(shards / "*"), str(out), "--ray", cluster, "-m", str(model_folder), "--chunk-size", "8"]
    args += ["--workers", "1", "--device", "cpu"]
    driver = _run_cli(args)
    deadline = time.monotonic() + 240
    while not list((out / "data").glob("*.parquet")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    written = len(list((out / "data").glob("*.parquet")))
    assert cluster.startswith("127.0.0.1:")
    assert 0 < written < 15 and not (out / "manifest.json").exists()

    deadline = time.monotonic() + 120  # Ray reaps the dead driver's workers; wait until their CPUs are free
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"] and time.monotonic() < deadline:
        time.sleep(0.5)
    # The same job resumed from Python (one driver start-up less than a second CLI run: the test stays fast)
    resumed = embed_shards(str(shards / "*"), out, str(model_folder), ONE_WORKER, address=cluster, show_progress=False)
    assert resumed.reused_chunks >= written - 1  # only what was missing was computed again
    assert resumed.reused_chunks + resumed.computed_chunks == 15
    _same_result(out, reference[0])


def test_duplicates_across_shards_and_invalid_records_are_reported(cluster, model_folder, tmp_path):
    folder = tmp_path / "dirty"
    folder.mkdir()
    first = [_record(0, i) for i in range(10)]
    _write_jsonl(folder / "1.jsonl", [*first[:4], "{not json", {"paper_id": "no-text"}, *first[4:]])
    repeat = dict(first[2])  # the same paper again: an exact duplicate
    conflict = {**first[5], "abstract": "another paper reusing the id"}
    _write_jsonl(folder / "2.jsonl", [repeat, _record(1, 0), conflict, _record(1, 1)])
    out = tmp_path / "out"

    with pytest.raises(ValueError, match=r"1\.jsonl:5: invalid JSON"):
        embed_shards(str(folder / "*.jsonl"), out, model=str(model_folder), options=ONE_WORKER, show_progress=False)
    lenient = ScaleOptions(chunk_size=8, workers=1, device="cpu", skip_invalid=True)
    report = embed_shards(str(folder / "*.jsonl"), out, model=str(model_folder), options=lenient, show_progress=False)
    counts = report.manifest["counts"]
    assert counts["skipped_invalid"] == 3 and counts["cross_shard_duplicates"] == 2
    assert counts["cross_shard_conflicts"] == 1 and counts["rows"] == 12
    ids, vectors = _ids_and_vectors(out)
    assert sorted(ids) == sorted([p["paper_id"] for p in first] + ["s1-0", "s1-1"])
    model = load_model(str(model_folder))
    kept = vectors[ids.index(first[5]["paper_id"])]
    np.testing.assert_allclose(kept, model.encode([first[5]], device="cpu")[0], atol=1e-5)  # the first occurrence
    expected = metadata_for(model, "proximity")
    assert all(read_metadata(p) == expected for p in (out / "data").glob("*.parquet"))  # kept when rewritten
    text = report.summary()
    assert "1.jsonl:5: invalid JSON" in text and "'s0-5'" in text and "different text" in text
    assert "'s0-2'" in text and "same text" in text


def test_index_built_shard_by_shard_from_the_embeddings(reference, shards, model_folder, tmp_path):
    pytest.importorskip("faiss", reason="the serve extra (faiss-cpu) is not installed")
    from sciembed.scale.index import build_index
    from sciembed.serve import PaperIndex

    out, _ = reference
    folder = tmp_path / "index"
    params = {"nlist": 4, "m": 4, "nbits": 4, "nprobe": 4, "rerank": 102}
    report = build_index(out, folder, kind="ivfpq", params=params, sample_size=64, show_progress=False)
    assert report.added == 102 and report.files == 15 and report.sample == 51  # every 2nd of 102 vectors
    assert report.largest_batch == 51 and report.peak_rss_mib > 0
    ids, vectors = _ids_and_vectors(out)
    with PaperIndex.open(folder) as index:
        assert len(index) == 102 and index.manifest.kind == "ivfpq"
        rows = index.resolve(ids)
        stored = index.vectors("proximity", rows)  # every paper's vector, joined by id from its data file
        np.testing.assert_allclose(np.stack([stored[r] for r in rows]), vectors, atol=1e-6)
        hits = index.search("proximity", vectors[:20], k=1)  # every list probed, all candidates re-scored
        assert min(h[0].score for h in hits) > 0.99999  # (the tiny random model's vectors nearly tie)
        record = index.get(["s3-5"])[0]
        assert record["title"] == "Paper 5 of shard 3"  # metadata joined from the input shard
    again = build_index(out, folder, kind="ivfpq", params=params, show_progress=False)
    assert again.added == 0 and again.skipped_existing == 102  # a rerun (or a resumed build) adds nothing twice
