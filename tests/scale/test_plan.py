"""Without Ray: where the model workers run (one per GPU), and one worker as an actor runs it.

The cluster plan is a function of the cluster's resources, so the N-GPU case is checked here on a
machine without GPUs; tests/scale/test_embed_shards.py runs the actor pool on a real local cluster.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import PAPERS

from sciembed.data import as_paper_list
from sciembed.embed.metadata import metadata_for, read_metadata
from sciembed.model import load_model
from sciembed.scale import ScaleOptions
from sciembed.scale.job import ClusterPlan, cluster_plan
from sciembed.scale.units import chunk_row
from sciembed.scale.worker import EmbedWorker, WorkerConfig

FIELDS = ("title", "abstract")


@pytest.mark.parametrize("gpus", [1, 8, 64])
def test_one_worker_per_gpu_each_holding_one_gpu(gpus):
    plan = cluster_plan(ScaleOptions(), {"CPU": 16.0 * gpus, "GPU": float(gpus)})
    # each with its share of the host's CPUs for tokenising (MiniLM on an H200 is bound by host work)
    assert plan == ClusterPlan(device="cuda", workers=gpus, gpus_per_worker=1.0, cpus_per_worker=16.0)
    assert cluster_plan(ScaleOptions(workers=1, cpus_per_worker=4), {"CPU": 16.0 * gpus, "GPU": float(gpus)}) == (
        ClusterPlan("cuda", 1, 1.0, 4.0)
    )


def test_cpu_workers_where_there_is_no_gpu_or_the_backend_runs_on_cpu():
    assert cluster_plan(ScaleOptions(cpus_per_worker=2), {"CPU": 9.0}) == ClusterPlan("cpu", 4, 0.0, 2.0)
    assert cluster_plan(ScaleOptions(), {"CPU": 8.0, "GPU": 2.0}, backend="onnx").device == "cpu"
    assert cluster_plan(ScaleOptions(device="cpu", workers=3), {"CPU": 8.0, "GPU": 2.0}).workers == 3
    # cuda:1 means "a GPU" on a cluster: each worker's own GPU is its cuda:0
    assert cluster_plan(ScaleOptions(device="cuda:1", workers=1), {"GPU": 2.0}) == ClusterPlan("cuda", 1, 1.0, 1.0)
    assert cluster_plan(ScaleOptions(), {"CPU": 3.0}) == ClusterPlan("cpu", 3, 0.0, 1.0)


@pytest.mark.parametrize(
    ("options", "resources", "backend", "message"),
    [
        (ScaleOptions(device="cuda"), {"CPU": 4.0}, "torch", "has no GPUs"),
        (ScaleOptions(device="cuda"), {"GPU": 1.0}, "onnx", "runs on CPU"),
        (ScaleOptions(workers=3), {"GPU": 2.0}, "torch", "has 2 GPUs"),
        (ScaleOptions(workers=0), {"CPU": 2.0}, "torch", "at least 1"),
        (ScaleOptions(device="mps"), {"CPU": 2.0}, "torch", "cuda or cpu"),
    ],
)
def test_impossible_plans_are_errors(options, resources, backend, message):
    with pytest.raises(ValueError, match=message):
        cluster_plan(options, resources, backend)


def _config(folder, tmp_path, **changes) -> WorkerConfig:
    model = load_model(str(folder))
    settings = dict(
        model=str(folder),
        backend="torch",
        format="proximity",
        device="cpu",
        dtype=None,
        batch_size=4,
        threads=1,
        fingerprint=model.fingerprint,
        fields=FIELDS,
        output=str(tmp_path / "out"),
        schema_metadata=tuple(metadata_for(model, "proximity").schema_metadata().items()),
        expected_dtype="torch.float32",
    )
    return WorkerConfig(**{**settings, **changes})


def test_worker_in_half_precision_keeps_the_fingerprint_of_the_loaded_weights(tiny_model_folder, tmp_path):
    """On CUDA a worker places the model in fp16; bf16 on CPU takes the same path here. The
    fingerprint is that of the weights as loaded, as the driver computes it, so the job runs."""
    config = _config(tiny_model_folder, tmp_path, dtype="bf16", expected_dtype="torch.bfloat16")
    worker = EmbedWorker(config)
    assert str(worker.encoder.dtype) == "torch.bfloat16"
    papers = as_paper_list(PAPERS)
    result = worker(chunk_row("unit", 0, papers, FIELDS))
    assert result["computed"] and result["rows"] == len(PAPERS)
    written = worker.layout.data_file("unit", 0)
    assert read_metadata(written) == metadata_for(load_model(str(tiny_model_folder)), "proximity")
    vectors = np.asarray(pq.read_table(written).column("embedding").to_pylist(), dtype=np.float32)
    expected = load_model(str(tiny_model_folder)).encode(PAPERS, device="cpu", dtype="bf16")
    np.testing.assert_allclose(vectors, expected, atol=1e-6)  # the same encode as `sciembed embed`
    assert worker(chunk_row("unit", 0, papers, FIELDS))["computed"] is False  # a retried chunk is kept


def test_worker_refuses_other_weights_or_another_dtype_than_the_job_records(tiny_model_folder, tmp_path):
    with pytest.raises(RuntimeError, match="every node must see the same model files"):
        EmbedWorker(_config(tiny_model_folder, tmp_path, fingerprint="0" * 64))
    with pytest.raises(RuntimeError, match="runs in torch.bfloat16, the job says torch.float32"):
        EmbedWorker(_config(tiny_model_folder, tmp_path, dtype="bf16"))


def test_cli_passes_every_embedding_option_to_the_ray_job(tmp_path):
    pytest.importorskip("ray.data", reason="the ray extra is not installed (pip install 'sciembed[ray]')")
    from typer.testing import CliRunner

    from sciembed.cli import app
    from sciembed.scale import ScaleReport

    calls = []

    def record(inputs, output, model=None, options=None, address=None, **_):
        calls.append((inputs, output, model, options, address))
        counts = dict.fromkeys(("rows", "papers_read", "inputs", "exact_duplicates", "skipped_invalid"), 0)
        return ScaleReport(output=output, manifest={"counts": {**counts, "cross_shard_duplicates": 0}})

    args = ["embed", "in/*.jsonl", str(tmp_path / "out"), "10.0.0.1:6379", "--ray", "-m", "M", "--backend", "onnx"]
    args += ["--dtype", "bf16", "--chunk-size", "7", "--batch-size", "5", "--format", "[CLF]", "--device", "cpu"]
    args += ["--workers", "3", "--cpus-per-worker", "2", "--readers", "4", "--skip-invalid", "--id-field", "doc"]
    result = CliRunner().invoke(app, args, obj={"embed_shards": record})  # records instead of running the job
    assert result.exit_code == 0, result.output
    ((inputs, _, model, options, address),) = calls
    assert (inputs, model, address) == ("in/*.jsonl", "M", "10.0.0.1:6379")
    assert options == ScaleOptions(
        format="[CLF]",
        batch_size=5,
        device="cpu",
        dtype="bf16",
        id_field="doc",
        skip_invalid=True,
        chunk_size=7,
        workers=3,
        cpus_per_worker=2.0,
        readers=4,
        backend="onnx",
    )
