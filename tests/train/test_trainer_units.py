"""Trainer pieces: loss values, weight-decay groups, the schedule, configs, the batch plan, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from trainhelpers import tiny_train_model

from sciembed.train.config import BaseTrainConfig, ConfigError, OptimConfig, load_config
from sciembed.train.losses import triplet_correct, triplet_margin_loss
from sciembed.train.optim import build_optimizer, build_scheduler, lr_factor, no_decay_names, param_groups
from sciembed.train.plots import write_curve
from sciembed.train.stage1 import collate_ids, epoch_batches, plan_chunks

REPO = Path(__file__).resolve().parents[2]


# ---- loss ----------------------------------------------------------------------------------------------
def test_triplet_loss_by_hand():
    q = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    p = torch.tensor([[3.0, 4.0], [1.0, 1.0], [0.0, 1.0]])  # d = 5, 0, 1
    n = torch.tensor([[0.0, 1.0], [4.0, 5.0], [0.0, 3.0]])  # d = 1, 5, 3
    # max(5 - 1 + 1, 0) = 5; max(0 - 5 + 1, 0) = 0; max(1 - 3 + 1, 0) = 0
    assert triplet_margin_loss(q, p, n, reduction="none").tolist() == [5.0, 0.0, 0.0]
    assert triplet_margin_loss(q, p, n).item() == pytest.approx(5 / 3)
    assert triplet_margin_loss(q, p, n, reduction="sum").item() == pytest.approx(5.0)
    # margin 2.5: the third triplet is inside the margin: 1 - 3 + 2.5 = 0.5
    assert triplet_margin_loss(q, p, n, margin=2.5, reduction="none").tolist() == [6.5, 0.0, 0.5]
    assert triplet_correct(q, p, n).tolist() == [False, True, True]


def test_triplet_loss_gradient_is_finite_when_query_equals_positive():
    q = torch.tensor([[1.0, 2.0]], requires_grad=True)
    loss = triplet_margin_loss(q, q.detach().clone(), torch.tensor([[1.0, 2.5]]))
    loss.backward()
    assert torch.isfinite(q.grad).all()


# ---- optimizer and schedule ---------------------------------------------------------------------------
def test_no_weight_decay_on_biases_and_norms():
    model = tiny_train_model()
    skip = no_decay_names(model)
    names = dict(model.named_parameters())
    assert {n for n in names if n.endswith(".bias")} <= skip
    assert {n for n in names if "LayerNorm" in n} <= skip
    assert "base.encoder.layer.0.attention.self.query.weight" not in skip
    assert "base.embeddings.word_embeddings.weight" not in skip
    groups = param_groups(model, 0.01)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    assert set(groups[1]["names"]) == skip and not set(groups[0]["names"]) & skip
    optimizer = build_optimizer(model, OptimConfig(weight_decay=0.01))
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, param in names.items():
        assert (id(param) in decayed) == (name not in skip), name
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(names)


def test_warmup_then_linear_decay():
    total, warmup = 100, 10
    factors = [lr_factor(s, warmup, total) for s in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(factors[:10], factors[1:10], strict=False))  # rising
    assert factors[10] == pytest.approx(1.0)
    assert all(b < a for a, b in zip(factors[10:], factors[11:], strict=False))  # falling
    assert factors[-1] == pytest.approx(1 / 90) and factors[-1] > 0
    assert lr_factor(50, 10, 100, "constant") == 1.0
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-3, warmup_ratio=0.1))
    scheduler = build_scheduler(optimizer, OptimConfig(lr=1e-3, warmup_ratio=0.1), total)
    seen = []
    for _ in range(total):
        seen.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([1e-3 * f for f in factors])
    assert max(seen) == pytest.approx(1e-3)


# ---- configs -------------------------------------------------------------------------------------------
def test_config_unknown_keys_and_wrong_types_are_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train_triplets: t.jsonl\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(path)
    path.write_text("train_triplets: t.jsonl\noptim:\n  lr: 1e-4\n  decay: 0.1\n")
    with pytest.raises(ConfigError, match="optim.decay"):
        load_config(path)
    path.write_text("train_triplets: t.jsonl\nbatch_size: many\n")
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(path)
    path.write_text("batch_size: 8\n")
    with pytest.raises(ConfigError, match="train_triplets"):
        load_config(path)
    path.write_text("train_triplets: t.jsonl\nbatch_size: 6\ngrad_accum_steps: 4\n")
    with pytest.raises(ConfigError, match="multiple"):
        load_config(path)


def test_config_yaml_json_and_overrides(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"train_triplets": "t.jsonl", "optim": {"lr": 1}}))
    config = load_config(tmp_path / "c.json", overrides=["optim.warmup_ratio=0.2", "validate_lite_tasks=[a, b]"])
    assert isinstance(config, BaseTrainConfig)
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)
    assert config.optim.warmup_ratio == 0.2 and config.validate_lite_tasks == ["a", "b"]
    assert config.optim.max_grad_norm == 1.0 and config.margin == 1.0


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("stage1-*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.train_triplets


# ---- data plan -----------------------------------------------------------------------------------------
def test_epoch_batches_deterministic_complete_and_length_grouped():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=1000)
    plan = epoch_batches(lengths, 32, seed=7, epoch=0, group_buffer_batches=10)
    assert len(plan) == 1000 // 32 and all(len(b) == 32 for b in plan)
    flat = np.concatenate(plan)
    assert len(set(flat.tolist())) == len(flat)  # each example at most once
    again = epoch_batches(lengths, 32, seed=7, epoch=0, group_buffer_batches=10)
    assert all(np.array_equal(a, b) for a, b in zip(plan, again, strict=True))
    other = epoch_batches(lengths, 32, seed=7, epoch=1, group_buffer_batches=10)
    assert not all(np.array_equal(a, b) for a, b in zip(plan, other, strict=True))

    def padding(batches):
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)

    ungrouped = epoch_batches(lengths, 32, seed=7, epoch=0, group_buffer_batches=1)
    assert padding(plan) < 0.3 * padding(ungrouped)


def test_plan_chunks_splits_off_long_documents():
    lengths = np.array([10, 500, 12, 9, 480, 11, 8, 10] * 8)
    chunks = plan_chunks(lengths, max_chunks=3, overhead_tokens=100)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(lengths)))
    assert len(chunks) >= 2 and set(lengths[chunks[0]]) == {500, 480}
    padded = sum(int(lengths[c].max()) * len(c) for c in chunks)
    assert padded < 0.3 * lengths.max() * len(lengths)
    assert len(plan_chunks(lengths, max_chunks=1)) == 1
    assert len(plan_chunks(np.array([7] * 20), max_chunks=3)) == 1  # nothing to gain


def test_collate_pads_to_longest():
    batch = collate_ids([np.array([101, 5, 102]), np.array([101, 102])], pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


# ---- plots ---------------------------------------------------------------------------------------------
def test_curve_png_and_table(tmp_path):
    records = [{"step": 0, "kind": "val", "triplet_accuracy": 0.5, "dev_loss": 0.9, "lite/aan/map": 30.0}]
    records += [
        {"step": s, "kind": "train", "epoch": s / 10, "loss": 1 / s, "lr": 1e-5, "grad_norm": 1.0, "examples_per_s": 9}
        for s in range(1, 11)
    ]
    records.append({"step": 10, "kind": "val", "triplet_accuracy": 0.7, "dev_loss": 0.5, "lite/aan/map": 35.0})
    png, table = write_curve(records, tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = table.read_text()
    assert "| 10 | 1.00 | 0.1000 |" in text and "triplet_accuracy" in text and "35.0000" in text
    assert not math.isnan(records[-1]["dev_loss"])
