"""End to end: ``sciembed train base --config FILE`` writes a loadable sciembed model folder."""
# ruff: noqa: F811  (pytest fixtures imported from trainhelpers are redefined as arguments)

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
from trainhelpers import one_thread, tiny_init_folder, triplet_files  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from sciembed.cli import app
from sciembed.model import load_model

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]


def test_train_base_command_writes_a_model_folder(tmp_path, tiny_init_folder, triplet_files):
    train, dev = triplet_files
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"init_model: {tiny_init_folder}\n"
        f"train_triplets: {train}\n"
        f"dev_triplets: {dev}\n"
        f"train_tokens: {tmp_path / 'train.tok.npz'}\n"
        f"output_dir: {tmp_path / 'run'}\n"
        "model_name: tiny-trained\n"
        "loss_embedding: raw\n"
        "batch_size: 16\n"
        "epochs: 1\n"
        "max_length: 48\n"
        "progress: false\n"
        "log_every: 1\n"
        "checkpoint_every: 2\n"
        "optim:\n  lr: 1.0e-3\n  warmup_steps: 1\n"
    )
    result = CliRunner().invoke(app, ["train", "base", "--config", str(config), "--set", "validate_every=2"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "run" / "model"
    assert f"model: {folder}" in result.output
    model = load_model(folder)
    assert model.config.name == "tiny-trained" and model.config.max_length == 48
    assert model.config.normalize  # raw training does not change how the model serves embeddings
    assert model.encode(["a title"], show_progress=False).shape == (1, 32)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert [r["step"] for r in records if r["kind"] == "val"] == [0, 2, 3]
    assert all(0 <= r["triplet_accuracy"] <= 1 for r in records if r["kind"] == "val")
    assert (tmp_path / "run" / "training.png").is_file() and (tmp_path / "run" / "curve.md").is_file()
    assert (tmp_path / "train.tok.npz").is_file()

    # the token cache alone is enough to train (GPU machines carry no triplet files)
    second = CliRunner().invoke(
        app,
        ["train", "base", "--config", str(config), "--set", f"train_triplets={tmp_path / 'gone.jsonl'}",
         "--set", "dev_triplets=null", "--set", f"output_dir={tmp_path / 'run2'}"],
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    assert "pre-tokenised" in second.output


def test_train_base_command_reports_config_errors(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train_triplets: x.jsonl\nlearning_rate: 1\n")
    result = CliRunner().invoke(app, ["train", "base", "--config", str(config)])
    assert result.exit_code == 2 and "learning_rate" in result.output


def test_speed_benchmark_runs_on_cpu(tmp_path, capsys):
    argv = ["--model", "tiny", "--steps", "2", "--warmup-steps", "1", "--batch-size", "4"]
    argv += [
        "--max-length",
        "32",
        "--triplets",
        str(tmp_path / "none.jsonl"),
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    benchmark = runpy.run_path(str(REPO / "benchmarks" / "train_speed.py"), run_name="train_speed")
    benchmark["main"](argv)
    report = json.loads((tmp_path / "train_speed_tiny_cpu.json").read_text())
    assert len(report["results"]) == 2 and report["speedup"] > 0
    assert "speed-up" in capsys.readouterr().out
