"""Stage 1 as a low-rank delta over a frozen base (``lora:``), stage 2 on top, delta scaling."""
# ruff: noqa: F811  (pytest fixtures imported from trainhelpers are redefined as arguments)

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_resume import Crash, config_for
from trainhelpers import one_thread, tiny_init_folder, triplet_files  # noqa: F401  (fixtures)

from sciembed.model import load_model
from sciembed.model.delta import LowRankDelta
from sciembed.train.config import ConfigError, LoraConfig, OptimConfig, from_dict
from sciembed.train.stage1 import train_base

pytestmark = pytest.mark.usefixtures("one_thread")
PAPERS = [{"paper_id": str(i), "title": f"graph parsing {i}", "abstract": "citation embedding " * i} for i in range(5)]


def lora_config(output, init, train, **extra):
    settings = dict(
        loss="contrastive",
        distill_weight=1.0,
        lora=LoraConfig(rank=4, alpha=8.0),
        optim=OptimConfig(lr=1e-2, warmup_ratio=0.0),
    )
    settings.update(extra)
    return config_for(output, init, train, **settings)


def test_lora_config_is_read_from_yaml_mappings_and_checked():
    config = from_dict(
        type(lora_config("o", "i", "t")),
        {"train_triplets": "t.jsonl", "lora": {"rank": 8, "alpha": 16, "targets": ["attention.*"]}},
    )
    assert config.lora == LoraConfig(rank=8, alpha=16.0, targets=["attention.*"])
    with pytest.raises(ConfigError, match="lora.rank"):
        LoraConfig(rank=0)
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(type(config), {"train_triplets": "t.jsonl", "lora": {"rnk": 8}})


def test_lora_stage1_trains_only_the_delta_and_saves_it_compactly(tmp_path, tiny_init_folder, triplet_files):
    train, _ = triplet_files
    messages: list[str] = []
    folder = train_base(lora_config(tmp_path / "run", tiny_init_folder, train), log=messages.append)
    assert any("low-rank stage 1: rank 4" in m and "trainable parameters (base frozen)" in m for m in messages)
    assert json.loads((folder / "sciembed.json").read_text())["delta"] == "delta"
    start, trained = (
        load_file(str(tiny_init_folder / "model.safetensors")),
        load_file(str(folder / "model.safetensors")),
    )
    delta = LowRankDelta.load(folder / "delta")
    assert len(delta.factors) == 12 and all(a.dtype == torch.float16 for a, _ in delta.factors.values())
    targets = {f"{name}.weight" for name in delta.factors}
    for key, value in start.items():  # biases, embeddings, LayerNorms and other weights: bitwise the start
        if key not in targets:
            assert torch.equal(trained[key], value), key
    assert all(not torch.equal(trained[k], start[k]) for k in targets)
    # the saved weights are exactly the start with the saved (fp16) factors merged
    rebuilt = load_model(tiny_init_folder)
    delta.merge_into(rebuilt.base)
    for key, value in rebuilt.base.state_dict().items():
        assert torch.equal(value, trained[key]), key
    # scaling the delta to 0 gives back the frozen start
    from sciembed.train.interpolate import scale_delta

    np.testing.assert_allclose(
        scale_delta(load_model(folder), 0.0).encode(PAPERS), load_model(tiny_init_folder).encode(PAPERS), atol=1e-5
    )


def test_killed_and_resumed_lora_run_matches_uninterrupted_run(tmp_path, tiny_init_folder, triplet_files):
    """The checkpoints hold the factors (inside the parametrised linears) and their optimizer state."""
    train, _ = triplet_files
    straight = train_base(lora_config(tmp_path / "straight", tiny_init_folder, train), log=lambda _: None)
    kill = lambda trainer, state: (_ for _ in ()).throw(Crash("killed")) if state.step == 5 else None  # noqa: E731
    with pytest.raises(Crash):
        train_base(lora_config(tmp_path / "resumed", tiny_init_folder, train), hooks=[kill], log=lambda _: None)
    resumed = train_base(lora_config(tmp_path / "resumed", tiny_init_folder, train), log=lambda _: None)
    a, b = LowRankDelta.load(straight / "delta"), LowRankDelta.load(resumed / "delta")
    assert a.factors.keys() == b.factors.keys()
    for name, (fa, fb) in a.factors.items():
        assert torch.equal(fa, b.factors[name][0]) and torch.equal(fb, b.factors[name][1]), name


def test_adapters_on_the_delta_merged_base_then_both_scaled(tmp_path, tiny_init_folder, triplet_files):
    """Stage 2 trains adapters over the delta-merged base (kept frozen, delta kept), and
    `sciembed train interpolate --delta-scale --adapter-scale` writes the WiSE-style candidates."""
    from test_multitask import make_config
    from typer.testing import CliRunner

    from sciembed.cli import app
    from sciembed.train.interpolate import scale_adapters, scale_delta
    from sciembed.train.multitask import train_stage2

    train, _ = triplet_files
    stage1 = train_base(lora_config(tmp_path / "s1", tiny_init_folder, train, max_steps=3), log=lambda _: None)
    data = tmp_path / "mix"
    data.mkdir()
    result = train_stage2(make_config(data, max_steps=2), str(stage1), tmp_path / "s2", log=None)
    merged, adapted = (
        load_file(str(stage1 / "model.safetensors")),
        load_file(str(result.model_dir / "model.safetensors")),
    )
    assert all(torch.equal(adapted[k], v) for k, v in merged.items())  # the base stayed frozen
    model = load_model(result.model_dir)
    assert model.delta is not None and len(model.formats) == 4

    out = tmp_path / "candidate"
    args = ["train", "interpolate", "--tuned", str(result.model_dir), "--delta-scale", "0.5", "--adapter-scale", "0.5"]
    done = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert done.exit_code == 0, done.output
    expected = scale_adapters(scale_delta(model, 0.5), 0.5)
    candidate = load_model(out)
    assert candidate.delta.config.scale == 0.5
    for fmt in ("proximity", "classification"):
        np.testing.assert_allclose(candidate.encode(PAPERS, format=fmt), expected.encode(PAPERS, format=fmt), atol=1e-6)
    assert candidate.fingerprint != model.fingerprint
    done = CliRunner().invoke(app, ["train", "interpolate", "--tuned", str(tiny_init_folder), "--delta-scale", "0.5",
                                    "-o", str(tmp_path / "x")])  # fmt: skip
    assert done.exit_code != 0 and "no low-rank delta" in done.output
