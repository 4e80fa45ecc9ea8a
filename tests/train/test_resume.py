"""Kill-and-resume: a run stopped mid-way and resumed ends with bitwise the same weights."""
# ruff: noqa: F811  (pytest fixtures imported from trainhelpers are redefined as arguments)

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from trainhelpers import one_thread, tiny_init_folder, triplet_files  # noqa: F401  (fixtures)

from sciembed.train.checkpoint import latest_checkpoint
from sciembed.train.config import BaseTrainConfig
from sciembed.train.stage1 import train_base

pytestmark = pytest.mark.usefixtures("one_thread")


class Crash(RuntimeError):
    pass


def config_for(output, init, train, **extra) -> BaseTrainConfig:
    settings = dict(
        output_dir=str(output),
        init_model=str(init),
        train_triplets=str(train),
        batch_size=8,
        grad_accum_steps=2,
        epochs=2,
        max_steps=8,  # 6 steps per epoch: the run crosses an epoch boundary after the crash
        checkpoint_every=3,
        log_every=1,
        validate_at_start=False,
        progress=False,
        max_length=64,
        group_buffer_batches=2,
    )
    settings.update(extra)
    return BaseTrainConfig(**settings)


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def train_losses(output):
    lines = [json.loads(x) for x in (output / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["lr"]) for r in lines if r["kind"] == "train"]


def test_killed_and_resumed_run_matches_uninterrupted_run_bitwise(tmp_path, tiny_init_folder, triplet_files):
    train, _ = triplet_files
    straight = train_base(config_for(tmp_path / "straight", tiny_init_folder, train), log=lambda _: None)

    def crash_after_step_5(trainer, state):
        if state.step == 5:
            raise Crash("simulated kill")

    resumed_dir = tmp_path / "resumed"
    with pytest.raises(Crash):
        train_base(config_for(resumed_dir, tiny_init_folder, train), hooks=[crash_after_step_5], log=lambda _: None)
    assert latest_checkpoint(resumed_dir).name == "step-00000003"
    assert not (resumed_dir / "model").exists()
    messages: list[str] = []
    resumed = train_base(config_for(resumed_dir, tiny_init_folder, train), log=messages.append)
    assert any("resumed from" in m and "step 3" in m for m in messages)

    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    changed = weights(tiny_init_folder)
    assert any(not torch.equal(a[k], changed[k]) for k in a), "training changed nothing"
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the metric log of the resumed run is the uninterrupted one (lines past the checkpoint replaced)
    assert train_losses(tmp_path / "straight") == train_losses(resumed_dir)
    assert [s for s, _, _ in train_losses(resumed_dir)] == list(range(1, 9))


def test_checkpoint_holds_everything_needed(tmp_path, tiny_init_folder, triplet_files):
    train, _ = triplet_files
    out = tmp_path / "run"
    train_base(config_for(out, tiny_init_folder, train, max_steps=3, keep_checkpoints=1), log=lambda _: None)
    folder = latest_checkpoint(out)
    state = torch.load(folder / "state.pt", weights_only=True)
    assert state["train_state"]["step"] == 3 and state["train_state"]["batch_in_epoch"] == 3
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 3
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step-00000003"]
    # a finished run resumed is a no-op that writes the same model again
    before = weights(out / "model")
    train_base(config_for(out, tiny_init_folder, train, max_steps=3), log=lambda _: None)
    after = weights(out / "model")
    assert all(torch.equal(before[k], after[k]) for k in before)
