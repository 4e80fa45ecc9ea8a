"""Issue 10's recipes: in-batch contrastive loss, distillation towards the start, interpolation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_resume import config_for
from trainhelpers import one_thread, tiny_init_folder, tiny_train_model, triplet_files  # noqa: F401

from sciembed.model import load_model, save_model
from sciembed.train.config import BaseTrainConfig, ConfigError, OptimConfig
from sciembed.train.interpolate import interpolate_base, scale_adapters
from sciembed.train.losses import in_batch_contrastive_loss, triplet_objective
from sciembed.train.stage1 import train_base

PAPERS = [{"paper_id": str(i), "title": f"graph parsing {i}", "abstract": "citation embedding " * i} for i in range(6)]


def test_contrastive_loss_is_cross_entropy_over_in_batch_and_hard_negatives():
    torch.manual_seed(0)
    q, p, n = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 8)
    unit = torch.nn.functional.normalize
    scores = 20.0 * unit(q) @ torch.cat([unit(p), unit(n)]).T
    expected = -torch.log_softmax(scores, dim=1).diagonal()
    assert torch.allclose(in_batch_contrastive_loss(q, p, n, reduction="none"), expected, atol=1e-5)
    assert torch.allclose(in_batch_contrastive_loss(q, p, n, reduction="sum"), expected.sum(), atol=1e-4)
    # a query identical to its positive and far from everything else costs almost nothing
    eye = torch.eye(8)[:4]
    assert in_batch_contrastive_loss(eye, eye, -eye).item() < 1e-3
    assert in_batch_contrastive_loss(eye, eye.roll(1, 0), -eye).item() > 1.0


def test_triplet_objective_by_name_and_config_checks():
    q = torch.randn(3, 4)
    assert torch.equal(triplet_objective("contrastive", q, q, -q), in_batch_contrastive_loss(q, q, -q))
    with pytest.raises(ValueError, match="unknown triplet loss"):
        triplet_objective("hinge", q, q, q)
    with pytest.raises(ConfigError, match="loss must be one of"):
        BaseTrainConfig(train_triplets="x.jsonl", loss="hinge")
    with pytest.raises(ConfigError, match="distill_weight"):
        BaseTrainConfig(train_triplets="x.jsonl", distill_weight=-1)


def _drift(start_folder, trained_folder) -> float:
    a, b = load_file(str(start_folder / "model.safetensors")), load_file(str(trained_folder / "model.safetensors"))
    return float(sum((a[k].float() - b[k].float()).norm() ** 2 for k in a) ** 0.5)


def test_distillation_keeps_the_model_closer_to_its_start(tmp_path, tiny_init_folder, triplet_files, one_thread):  # noqa: F811
    train, _ = triplet_files
    common = dict(loss="contrastive", max_steps=6, checkpoint_every=0, grad_accum_steps=1)
    common["optim"] = OptimConfig(lr=3e-3, warmup_ratio=0.0)
    free = train_base(config_for(tmp_path / "free", tiny_init_folder, train, **common), log=lambda _: None)
    held = train_base(
        config_for(tmp_path / "held", tiny_init_folder, train, distill_weight=50.0, **common), log=lambda _: None
    )
    start = load_model(tiny_init_folder).encode(PAPERS)
    cos = lambda v: float(np.mean(np.sum(v * start, axis=1)))  # noqa: E731 (unit vectors)
    assert cos(load_model(held).encode(PAPERS)) > cos(load_model(free).encode(PAPERS))
    assert _drift(tiny_init_folder, held) < _drift(tiny_init_folder, free)


def _saved_pair(tmp_path):
    save_model(tiny_train_model(dropout=0.0, seed=1), tmp_path / "start")
    save_model(tiny_train_model(dropout=0.0, seed=2), tmp_path / "tuned")
    return load_model(tmp_path / "start"), load_model(tmp_path / "tuned")


def test_interpolation_ends_are_the_two_models_and_the_middle_is_between(tmp_path):
    start, tuned = _saved_pair(tmp_path)
    a, b = start.encode(PAPERS), tuned.encode(PAPERS)
    np.testing.assert_allclose(interpolate_base(start, tuned, 0.0).encode(PAPERS), a, atol=1e-5)
    np.testing.assert_allclose(interpolate_base(start, tuned, 1.0).encode(PAPERS), b, atol=1e-5)
    half = interpolate_base(start, tuned, 0.5).encode(PAPERS)
    assert not np.allclose(half, a, atol=1e-3) and not np.allclose(half, b, atol=1e-3)
    np.testing.assert_allclose(tuned.encode(PAPERS), b)  # the inputs are not modified
    with pytest.raises(ValueError, match="alpha"):
        interpolate_base(start, tuned, 1.5)


def test_adapter_scale_zero_is_the_base_and_one_is_the_adapter():
    model = tiny_train_model(dropout=0.0, seed=3).eval()
    base = model.encode(PAPERS, format="proximity")  # no adapter yet: the base serves every format
    stack = model.add_adapter("proximity")
    for param in stack.parameters():
        torch.nn.init.normal_(param, std=0.3)
    full = model.encode(PAPERS, format="proximity")
    assert not np.allclose(base, full, atol=1e-3)
    np.testing.assert_allclose(scale_adapters(model, 0.0).encode(PAPERS, format="proximity"), base, atol=1e-5)
    np.testing.assert_allclose(scale_adapters(model, 1.0).encode(PAPERS, format="proximity"), full, atol=1e-6)
    with pytest.raises(ValueError, match="no adapter"):
        scale_adapters(model, 0.5, ["regression"])


def test_a_deep_copy_is_independent_of_its_original():
    """The distillation teacher and interpolated models are deep copies; a copy must not share layers."""
    import copy

    model = tiny_train_model(dropout=0.0, seed=4).eval()
    stack = model.add_adapter("proximity")
    for param in stack.parameters():
        torch.nn.init.normal_(param, std=0.3)
    before = model.encode(PAPERS, format="proximity")
    twin = copy.deepcopy(model)
    with torch.no_grad():  # only the feed-forward output blocks, whose forward the adapters patch
        for name, param in twin.base.named_parameters():
            if re.search(r"layer\.\d+\.output\.dense", name):
                param.add_(torch.randn_like(param))
    np.testing.assert_array_equal(model.encode(PAPERS, format="proximity"), before)
    assert not np.allclose(twin.encode(PAPERS, format="proximity"), before, atol=1e-2)


def test_interpolate_command_writes_a_loadable_model(tmp_path):
    from typer.testing import CliRunner

    from sciembed.cli import app

    _saved_pair(tmp_path)
    out = tmp_path / "mixed"
    args = ["train", "interpolate", "--start", str(tmp_path / "start"), "--tuned", str(tmp_path / "tuned")]
    result = CliRunner().invoke(app, [*args, "--alpha", "0.5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = interpolate_base(load_model(tmp_path / "start"), load_model(tmp_path / "tuned"), 0.5).encode(PAPERS)
    np.testing.assert_allclose(load_model(out).encode(PAPERS), expected, atol=1e-5)
    result = CliRunner().invoke(app, [*args[:2], *args[4:], "--alpha", "0.5", "-o", str(out)])
    assert result.exit_code == 2 and "needs --start" in result.output
