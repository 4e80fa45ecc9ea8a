"""Stage 2's distillation term (``distill_weight``): adapted embeddings kept close to the frozen base's."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from conftest import make_tiny_model
from test_multitask import _task, make_config
from trainhelpers import one_thread  # noqa: F401  (fixture)

from sciembed.train.config import ConfigError, OptimConfig
from sciembed.train.multitask import load_stage2_config, train_stage2
from sciembed.train.multitask.trainer import ForwardGroup, Stage2Task

pytestmark = pytest.mark.usefixtures("one_thread")


def test_distill_weight_config_is_validated(tmp_path):
    assert make_config(tmp_path).distill_weight == 0.0
    assert make_config(tmp_path, distill_weight=2.5).distill_weight == 2.5
    with pytest.raises(ConfigError, match="non-negative"):
        make_config(tmp_path, distill_weight=-0.1)
    with pytest.raises(ConfigError, match="mode 'adapters'"):
        make_config(tmp_path, distill_weight=1.0, mode="multitask")
    make_config(tmp_path, distill_weight=0.0, mode="multitask")  # off: fine without a frozen base
    data = make_config(tmp_path).to_dict()
    data.pop("root")
    data["distill_weight"] = 4.0
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    assert load_stage2_config(tmp_path / "s.yaml").distill_weight == 4.0
    with pytest.raises(ConfigError, match="mode 'adapters'"):
        load_stage2_config(tmp_path / "s.yaml", mode="multitask")  # what `sciembed train multitask` passes
    data["distil_weight"] = data.pop("distill_weight")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="distil_weight"):
        load_stage2_config(tmp_path / "typo.yaml")


def _base_embeddings(task: Stage2Task, group: ForwardGroup) -> torch.Tensor:
    with torch.no_grad():
        return task.module.embed(ForwardGroup(None, group.inputs, group.parts)).float()


def _zero_up_projections(model) -> None:
    for name, param in model.adapters.named_parameters():
        if ".adapter_up." in name:
            torch.nn.init.zeros_(param)


def test_distill_term_is_the_mean_cosine_drift_per_task_role_on_every_forward_kind(tmp_path):
    task, config = _task(tmp_path, distill_weight=3.0)
    task.module.eval()
    batch = task.mixer.epoch(0)[0]
    values = {}
    for kind, packed, overhead in (("packed", True, 2048), ("bucketed", False, 2048), ("padded", False, 0)):
        task.packed, task.config = packed, dataclasses.replace(config, bucket_overhead_tokens=overhead)
        step = task.step_inputs(batch)
        assert step.groups and all(g.adapter is not None for g in step.groups)
        assert {type(g.inputs).__name__ for g in step.groups} == {
            "packed": {"Packed"}, "bucketed": {"BucketedPadded"}, "padded": {"dict"}
        }[kind]  # fmt: skip
        losses = task.module(step)
        expected = 0.0
        for group in step.groups:
            with torch.no_grad():
                adapted = task.module.embed(group).float()
            drift = 1 - torch.nn.functional.cosine_similarity(adapted, _base_embeddings(task, group), dim=-1)
            expected += sum(part.mean().item() for part in drift.split([n for _, _, n in group.parts]))
        assert losses["distill"].item() == pytest.approx(3.0 * expected, rel=1e-5), kind
        assert losses["distill"].requires_grad
        values[kind] = losses["distill"].item()
        total = task.loss(task.module, batch)  # the summed loss includes it, and it is logged
        assert total.item() == pytest.approx(sum(v.item() for v in losses.values()) * len(batch), rel=1e-5)
        assert "distill" in task.train_metrics()["task_losses"]
    # the same function on each kind (1 - cosine near 1 is only good to float32 rounding, ~1e-7 each)
    assert values["bucketed"] == pytest.approx(values["padded"], abs=2e-6)
    assert values["packed"] == pytest.approx(values["padded"], abs=2e-6)
    # N(0, 0.02) adapters start near the base but not at it; identity adapters (zero up-projection)
    # give the base's own embedding: the term is 0
    assert 1e-6 < values["padded"] < 1e-3
    _zero_up_projections(task.model)
    assert task.module(task.step_inputs(batch))["distill"].item() == pytest.approx(0.0, abs=1e-5)


def test_distill_target_has_no_dropout_and_off_adds_no_entry(tmp_path):
    task, _ = _task(tmp_path, distill_weight=1.0)
    for module in task.model.base.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    step = task.step_inputs(task.mixer.epoch(0)[0])
    group = step.groups[0]
    task.module.eval()
    clean = _base_embeddings(task, group)
    task.module.train()  # as the loop runs it: dropout on in the adapted forward
    assert task.module.drift(group, clean).item() == pytest.approx(0.0, abs=1e-6)  # the target is clean
    assert task.model.training  # the train mode is restored
    (tmp_path / "off").mkdir()
    off, _ = _task(tmp_path / "off")
    assert "distill" not in off.module(off.step_inputs(off.mixer.epoch(0)[0]))


def _mean_cosine_to_base(model, config, folder) -> float:
    """Mean cosine of every adapted embedding of the mixture to the base's embedding (no dropout)."""
    task, _ = _task(folder, model=model, config=config)
    task.module.eval()
    cosines = []
    for batch in task.mixer.epoch(0):
        for group in task.step_inputs(batch).groups:
            with torch.no_grad():
                adapted = task.module.embed(group).float()
            cosines.append(torch.nn.functional.cosine_similarity(adapted, _base_embeddings(task, group), dim=-1))
    return torch.cat(cosines).mean().item()


def test_a_large_distill_weight_keeps_trained_adapters_closer_to_the_base(tmp_path):
    results = {}
    for weight in (0.0, 50.0):
        folder = tmp_path / str(weight)
        folder.mkdir()
        config = make_config(folder, max_steps=4, distill_weight=weight, optim=OptimConfig(lr=1e-1))
        model = make_tiny_model()
        result = train_stage2(config, model, folder / "run", log=None)
        assert result.steps == 4
        rows = [json.loads(x) for x in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        distill = [r["task_losses"].get("distill") for r in rows if r["kind"] == "train"]
        results[weight] = (_mean_cosine_to_base(model, config, folder), distill)
    (free, free_log), (kept, kept_log) = results[0.0], results[50.0]
    assert free_log == [None] * 4 and all(d is not None and d > 0 for d in kept_log)
    assert free < 0.9  # at this learning rate the adapters really move away from the base (0.58 seen)
    assert kept > free + 0.5 * (1 - free)  # and the term halves (at least) the distance to it (0.993 seen)
