"""Stage 2: mixed proportional batching, losses, frozen base, heads save/load, resume, multi-task baseline."""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import make_tiny_model

from sciembed.train.config import ConfigError, OptimConfig
from sciembed.train.multitask import (
    MixedBatches,
    Stage2Config,
    Stage2Result,
    TaskConfig,
    head_loss,
    load_heads,
    load_stage2_config,
    train_stage2,
    triplet_loss,
)

TOPICS = ["graph neural networks", "protein folding", "machine translation", "galaxy formation"]


def _write(path: Path, rows: list[dict]) -> str:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path.name


def make_config(folder: Path, **overrides) -> Stage2Config:
    """A tiny mixture of every format: papers by id, inline papers and plain-text queries."""
    papers = [
        {"paper_id": f"p{i}", "title": f"{TOPICS[i % 4]} study {i}", "abstract": f"we study {TOPICS[i % 4]}"}
        for i in range(24)
    ]
    _write(folder / "papers.jsonl.gz", papers)
    tasks = [
        TaskConfig(
            "clf",
            "classification",
            _write(folder / "clf.jsonl.gz", [{"paper": f"p{i}", "label": TOPICS[i % 4]} for i in range(12)]),
        ),
        TaskConfig(
            "ml",
            "multi_label",
            _write(
                folder / "ml.jsonl.gz",
                [{"paper": {"title": f"t {i}", "abstract": "x"}, "label": ["a", "b"][: 1 + i % 2]} for i in range(8)],
            ),
        ),
        TaskConfig(
            "reg",
            "regression",
            _write(folder / "reg.jsonl.gz", [{"paper": f"p{i}", "label": 2000 + i} for i in range(6)]),
        ),
        TaskConfig(
            "prx",
            "proximity",
            _write(
                folder / "prx.jsonl.gz", [{"query": f"p{i}", "pos": f"p{i + 4}", "neg": f"p{i + 1}"} for i in range(10)]
            ),
        ),
        TaskConfig(
            "search",
            "adhoc_search",
            _write(
                folder / "search.jsonl.gz",
                [{"query": TOPICS[i % 4], "pos": f"p{i}", "neg": f"p{i + 1}"} for i in range(4)],
            ),
        ),
    ]
    settings = dict(
        batch_size=8,
        optim=OptimConfig(lr=1e-3),
        epochs=1,
        progress=False,
        max_length=32,
        log_every=1,
        checkpoint_every=2,
        precision="fp32",
        root=str(folder),
    )
    settings.update(overrides)
    return Stage2Config(tasks=tasks, papers="papers.jsonl.gz", **settings)


# ---- mixing ---------------------------------------------------------------------------------------------
def test_mixed_batches_are_proportional_and_deterministic():
    sizes = {"a": 3000, "b": 1000, "c": 500}
    mixer = MixedBatches(sizes, batch_size=64, seed=42)
    batches = mixer.epoch(0)
    counts = Counter(name for batch in batches for name, _ in batch)
    assert counts == Counter(sizes)  # every example once per epoch
    assert all(len(b) == 64 for b in batches[:-1])
    # per batch, each task's share follows its size
    share_a = sum(sum(1 for n, _ in b if n == "a") for b in batches[:20]) / sum(len(b) for b in batches[:20])
    assert abs(share_a - 3000 / 4500) < 0.05
    assert MixedBatches(sizes, 64, seed=42).epoch(0) == batches
    assert MixedBatches(sizes, 64, seed=7).epoch(0) != batches
    assert mixer.epoch(1) != batches


def test_mixed_batches_shard_across_processes():
    sizes = {"a": 100, "b": 37}
    shards = [MixedBatches(sizes, 8, seed=1, rank=r, world_size=2).epoch(0) for r in range(2)]
    assert len(shards[0]) == len(shards[1])
    seen = [pair for shard in shards for batch in shard for pair in batch]
    assert len(seen) == len(set(seen))


# ---- losses ---------------------------------------------------------------------------------------------
def test_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert head_loss("ce", logits, torch.tensor([1])).item() == pytest.approx(-math.log(3 / 4))


def test_bce_by_hand():
    logits = torch.tensor([[0.0, 0.0]])
    assert head_loss("bce", logits, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(math.log(2))


def test_mse_by_hand():
    assert head_loss("mse", torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])).item() == pytest.approx(2.5)


def test_triplet_by_hand():
    q = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # distances 5 and 1
    n = torch.tensor([[0.0, 1.0], [0.0, 5.0]])  # distances 1 and 5
    # max(5 - 1 + 1, 0) = 5 and max(1 - 5 + 1, 0) = 0 -> mean 2.5
    assert triplet_loss(q, p, n, margin=1.0).item() == pytest.approx(2.5)


def test_task_config_defaults_and_validation():
    task = TaskConfig("s", "adhoc_search", "x.jsonl")
    assert task.loss == "triplet" and task.role_adapters == {
        "query": "adhoc_query",
        "pos": "proximity",
        "neg": "proximity",
    }
    assert TaskConfig("m", "multi-label", "x").loss == "bce"
    with pytest.raises(ValueError):
        TaskConfig("bad", "regression", "x", loss="triplet")


# ---- training -------------------------------------------------------------------------------------------
def test_adapters_train_base_frozen_bitwise_and_heads_round_trip(tmp_path):
    from sciembed.model import load_model

    config = make_config(tmp_path, max_steps=3)
    model = make_tiny_model()
    base_before = {k: v.clone() for k, v in model.base.state_dict().items()}
    result = train_stage2(config, model, tmp_path / "run", log=None)
    assert result.steps == 3 and result.finished and result.total_steps == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert Stage2Result.from_json(summary) == result and summary["task_meta"].keys() == result.examples.keys()
    for key, value in model.base.state_dict().items():
        assert torch.equal(value, base_before[key]), key  # bitwise
    assert sorted(model.formats) == ["adhoc_query", "classification", "proximity", "regression"]
    assert any(p.abs().sum() > 0 and not torch.equal(p, torch.zeros_like(p)) for p in model.adapters.parameters())

    folder = result.model_dir
    reloaded = load_model(folder)  # ignores heads
    assert sorted(reloaded.formats) == sorted(model.formats)
    for fmt in model.formats:
        for (k, a), (_, b) in zip(
            model.adapters[fmt].state_dict().items(), reloaded.adapters[fmt].state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), (fmt, k)
    heads = load_heads(folder)
    assert sorted(heads) == ["clf", "ml", "reg"]
    assert heads["clf"].config.labels == sorted(TOPICS) and heads["clf"].linear.out_features == 4
    assert heads["reg"].config.label_mean == pytest.approx(2002.5)
    log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in log if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3]
    assert all(set(r["task_losses"]) <= {"clf", "ml", "reg", "prx", "search"} for r in train_rows)
    assert (tmp_path / "run" / "curves.png").is_file() and (tmp_path / "run" / "curve.md").is_file()


def test_adapters_and_heads_change(tmp_path):
    config = make_config(tmp_path, max_steps=2)
    model = make_tiny_model()
    result = train_stage2(config, model, tmp_path / "run", log=None)
    heads = load_heads(result.model_dir)
    fresh = load_heads(result.model_dir)  # same values: loaded twice
    assert torch.equal(heads["clf"].linear.weight, fresh["clf"].linear.weight)
    # adapters start with N(0, 0.02) weights and zero biases: trained biases are no longer zero
    assert any(p.abs().sum() > 0 for n, p in model.adapters.named_parameters() if n.endswith("bias"))


def test_resume_matches_uninterrupted_run(tmp_path):
    config = make_config(tmp_path, max_steps=4)
    straight = make_tiny_model()
    train_stage2(config, straight, tmp_path / "straight", log=None)

    first = make_tiny_model()
    partial = train_stage2(config, first, tmp_path / "resumed", stop_after_steps=2, log=None)
    assert partial.steps == 2 and not (tmp_path / "resumed" / "model").exists()
    second = make_tiny_model()  # a fresh process: same base, adapters restored from the checkpoint
    result = train_stage2(config, second, tmp_path / "resumed", log=None)
    assert result.resumed_from_step == 2 and result.steps == 4
    for fmt in straight.formats:
        for (k, a), (_, b) in zip(
            straight.adapters[fmt].state_dict().items(), second.adapters[fmt].state_dict().items(), strict=True
        ):
            assert torch.allclose(a, b, atol=1e-6), (fmt, k)


def test_multitask_baseline_updates_the_base(tmp_path):
    config = make_config(tmp_path, max_steps=2, mode="multitask")
    model = make_tiny_model()
    before = {k: v.clone() for k, v in model.base.state_dict().items()}
    result = train_stage2(config, model, tmp_path / "run", log=None)
    assert model.formats == []
    changed = [k for k, v in model.base.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    assert sorted(load_heads(result.model_dir)) == ["clf", "ml", "reg"]


def test_config_file_and_max_examples(tmp_path):
    from sciembed.train.multitask import load_task_examples

    config = make_config(tmp_path)
    (tmp_path / "mix").mkdir()
    data = config.to_dict()
    data.pop("root")
    data["tasks"][0]["max_examples"] = 5
    (tmp_path / "stage2.yaml").write_text(json.dumps(data))  # JSON is YAML
    loaded = load_stage2_config(tmp_path / "stage2.yaml", mode="multitask")
    assert loaded.mode == "multitask" and loaded.tasks[0].max_examples == 5
    assert len(load_task_examples(loaded.tasks[0], loaded, {})) == 0  # ids unknown without the papers table
    from sciembed.train.multitask.data import read_papers_table

    papers = read_papers_table(loaded.resolve(loaded.papers))
    assert len(load_task_examples(loaded.tasks[0], loaded, papers)) == 5


# ---- the default model ----------------------------------------------------------------------------------
def test_embed_uses_shipped_model_by_default(tmp_path, monkeypatch):
    from sciembed.model import load_model, save_model
    from sciembed.model.default_model import default_model_path, shipped_model_path

    tiny = make_tiny_model(formats=("proximity", "classification", "regression", "adhoc_query"))
    save_model(tiny, tmp_path / "sciembed-minilm", dtype="fp16")
    monkeypatch.setenv("SCIEMBED_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert shipped_model_path() == tmp_path / "sciembed-minilm"
    assert default_model_path(verify=False) == tmp_path / "sciembed-minilm"
    model = load_model()
    assert sorted(model.formats) == sorted(tiny.formats) and model.hidden_size == 32


def test_shipped_model_in_repository_is_small_and_loads():
    from sciembed.model import load_model
    from sciembed.model.default_model import SHIPPED_MODEL

    folder = Path(__file__).resolve().parents[2] / "models" / SHIPPED_MODEL
    if not (folder / "sciembed.json").is_file():
        pytest.skip("models/sciembed-minilm is not built yet (scripts/rebuild_model.sh)")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024  # adapters only: the base is the verified registry all-MiniLM-L6-v2
    assert (folder / "README.md").is_file()
    model = load_model(folder)
    assert sorted(model.formats) == ["adhoc_query", "classification", "proximity", "regression"]
    assert model.config.base_model == "all-minilm-l6-v2" and model.name == "sciembed-minilm"
    base = load_model("all-minilm-l6-v2")
    from sciembed.model.delta import LowRankDelta

    # the base is the verified start plus the shipped low-rank delta, merged at load: nothing else changed
    delta = LowRankDelta.load(folder / model.config.delta)
    expected = load_model("all-minilm-l6-v2")
    delta.merge_into(expected.base)
    for key, value in expected.base.state_dict().items():
        assert torch.equal(value, model.base.state_dict()[key]), key
    assert delta.num_parameters < 0.05 * sum(p.numel() for p in base.base.parameters())
    papers = [{"paper_id": "1", "title": "Citation recommendation", "abstract": "We embed papers."}]
    assert not np.allclose(model.encode(papers, format="proximity"), base.encode(papers), atol=1e-3)


# ---- loss inputs, weights and learning rates --------------------------------------------------------------
def _task(tmp_path, model=None, config=None, **overrides):
    from sciembed.train.multitask import Stage2Task
    from sciembed.train.multitask.data import load_all_examples
    from sciembed.train.multitask.trainer import prepare_model, tokenize_examples

    config = config or make_config(tmp_path, **overrides)
    model = model or make_tiny_model()
    model.config.normalize = True
    prepare_model(model, config)
    examples = load_all_examples(config)
    tokens = tokenize_examples(model, examples, config.max_length)
    return Stage2Task(model, examples, tokens, config, torch.device("cpu")), config


def test_heads_and_triplets_see_the_raw_pooled_output(tmp_path):
    task, _ = _task(tmp_path)
    batch = task.mixer.epoch(0)[0]
    step = task.step_inputs(batch)
    norms = torch.cat([task.module.embed(g).norm(dim=-1) for g in step.groups])
    assert not torch.allclose(norms, torch.ones_like(norms))  # raw: not unit length
    (tmp_path / "served").mkdir()
    served, _ = _task(tmp_path / "served", loss_embedding="model")
    step = served.step_inputs(served.mixer.epoch(0)[0])
    norms = torch.cat([served.module.embed(g).norm(dim=-1) for g in step.groups])
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_task_weights_scale_that_tasks_loss(tmp_path):
    plain, _ = _task(tmp_path)
    (tmp_path / "w").mkdir()
    weighted, _ = _task(tmp_path / "w", task_weights={"prx": 3.0})
    weighted.module.load_state_dict(plain.module.state_dict())
    plain.module.eval()
    weighted.module.eval()  # no dropout: the same numbers but for the weight
    batch = [("prx", 0), ("prx", 1), ("clf", 0), ("clf", 3)]
    a = plain.module(plain.step_inputs(batch))
    b = weighted.module(weighted.step_inputs(batch))
    assert b["prx"].item() == pytest.approx(3.0 * a["prx"].item(), rel=1e-5)
    assert b["clf"].item() == pytest.approx(a["clf"].item(), rel=1e-5)
    with pytest.raises(ConfigError, match="unknown tasks"):
        make_config(tmp_path, task_weights={"nope": 2.0})


def test_heads_train_at_their_own_learning_rate(tmp_path):
    from sciembed.train.optim import build_optimizer

    task, config = _task(tmp_path, optim=OptimConfig(lr=1e-4, lr_by_prefix={"heads.": 1e-3}))
    optimizer = build_optimizer(task.module, config.optim)
    by_id = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name, param in task.module.named_parameters():
        if not param.requires_grad:
            continue
        assert by_id[id(param)] == (1e-3 if name.startswith("heads.") else 1e-4), name
    assert optimizer.param_groups[0]["lr"] == 1e-4  # the logged rate is the encoder's


def test_yaml_numbers_without_a_dot_are_numbers(tmp_path):
    config = make_config(tmp_path)
    data = config.to_dict()
    data.pop("root")
    text = yaml.safe_dump(data).replace("lr: 0.001", "lr: 1e-3")
    assert "lr: 1e-3" in text
    (tmp_path / "s.yaml").write_text(text)
    assert load_stage2_config(tmp_path / "s.yaml").optim.lr == 1e-3


def test_train_adapters_command_with_overrides(tmp_path):
    from typer.testing import CliRunner

    from sciembed.cli import app
    from sciembed.model import load_model, save_model

    config = make_config(tmp_path)
    data = config.to_dict()
    data.pop("root")
    (tmp_path / "stage2.yaml").write_text(yaml.safe_dump(data))
    save_model(make_tiny_model(), tmp_path / "base")
    args = ["train", "adapters", "-c", str(tmp_path / "stage2.yaml"), "--base", str(tmp_path / "base")]
    args += ["-o", str(tmp_path / "run"), "--max-steps", "2", "--set", "optim.lr_by_prefix={'heads.': 0.01}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "stage2.yaml").read_text())
    assert saved["optim"]["lr_by_prefix"] == {"heads.": 0.01} and saved["max_steps"] == 2
    assert sorted(load_model(tmp_path / "run" / "model").formats) == [
        "adhoc_query",
        "classification",
        "proximity",
        "regression",
    ]
    bad = CliRunner().invoke(app, args[:-2] + ["--set", "task_weights={'nope': 1.0}"])
    assert bad.exit_code != 0 and "nope" in bad.output


def test_adapters_train_under_ddp_with_two_gloo_processes(tmp_path):
    """Two CPU processes (gloo): the run finishes, every rank ends with the same adapters, the base
    stays bitwise frozen, and rank 0 writes the model (tasks absent from a shard leave heads idle).
    With the distillation term on: its no-grad, eval-mode base forward runs inside DDP's forward."""
    import os
    import subprocess
    import sys

    from sciembed.model import save_model

    config = make_config(tmp_path, max_steps=3, batch_size=8, distill_weight=1.0)
    data = config.to_dict()
    data.pop("root")
    data["root"] = str(tmp_path)
    (tmp_path / "stage2.yaml").write_text(yaml.safe_dump(data))
    base = make_tiny_model()
    save_model(base, tmp_path / "base")
    worker = Path(__file__).with_name("stage2_ddp_worker.py")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        str(worker), str(tmp_path / "stage2.yaml"), str(tmp_path / "base"), str(tmp_path / "run"),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "run" / f"rank-{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 3
    for name, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][name]), name
    for name, value in base.base.state_dict().items():
        assert torch.equal(ranks[0]["state"][f"base.{name}"], value), name
    assert (tmp_path / "run" / "model" / "sciembed.json").is_file()
    assert sorted(load_heads(tmp_path / "run" / "model")) == ["clf", "ml", "reg"]
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["task_losses"]["distill"] > 0 for r in logged if r["kind"] == "train")


def test_contrastive_triplet_loss_in_stage2(tmp_path):
    """``triplet_loss: contrastive`` scores each query against the batch's positives and negatives."""
    from sciembed.train.losses import in_batch_contrastive_loss

    task, _ = _task(tmp_path, triplet_loss="contrastive", contrastive_scale=10.0)
    task.module.eval()
    batch = [("prx", 0), ("prx", 1), ("prx", 2), ("clf", 0)]
    step = task.step_inputs(batch)
    losses = task.module(step)
    embedded = {}
    for group in step.groups:
        vectors = task.module.embed(group).float().split([count for _, _, count in group.parts])
        for (name, role, _), chunk in zip(group.parts, vectors, strict=True):
            embedded[(name, role)] = chunk
    query, pos, neg = (embedded[("prx", role)] for role in ("query", "pos", "neg"))
    expected = in_batch_contrastive_loss(query, pos, neg, scale=10.0)
    assert losses["prx"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ConfigError, match="triplet_loss"):
        make_config(tmp_path, triplet_loss="hinge")
    result = train_stage2(
        make_config(tmp_path, max_steps=2, triplet_loss="contrastive"), make_tiny_model(), tmp_path / "run", log=None
    )
    assert result.steps == 2


def test_length_buckets_cover_every_sequence_and_minimise_padding_plus_overhead():
    import itertools

    from sciembed.train.multitask.buckets import length_buckets

    lengths = [30, 3, 17, 250, 5, 5, 64, 9, 120, 2, 250, 7]

    def cost(chunks, overhead):
        return sum(len(c) * -(-max(lengths[i] for i in c) // 8) * 8 + overhead for c in chunks)

    by_length = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    for overhead in (0, 64, 512, 10**6):
        chunks = length_buckets(lengths, overhead)
        assert [i for c in chunks for i in c] == by_length  # every index once, by increasing length
        # no split of the sorted order into contiguous chunks costs less (brute force over all cuts)
        best = min(
            cost([by_length[a:b] for a, b in itertools.pairwise((0, *cuts, len(lengths)))], overhead)
            for k in range(len(lengths))
            for cuts in itertools.combinations(range(1, len(lengths)), k)
        )
        assert cost(chunks, overhead) == best, overhead
    assert len(length_buckets(lengths, 10**6)) == 1 and len(length_buckets(lengths, 0)) == 7  # distinct widths


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_bucketed_padding_gives_the_loss_and_gradients_of_one_padded_forward(tmp_path, kind):
    """On a base without a packed forward: length-bucketed chunks (less padding) = one padded forward."""
    from sciembed.model.mpnet_attention import use_sdpa_attention
    from sciembed.train.multitask.buckets import BucketedPadded

    results = {}
    for budget in (0, 16):
        model = make_tiny_model(kind)
        use_sdpa_attention(model.base)  # as sciembed.load does for MPNet (a no-op for BERT)
        folder = tmp_path / str(budget)
        folder.mkdir()
        config = make_config(folder, bucket_overhead_tokens=budget, max_length=64)
        _write(  # titles only and long abstracts: lengths from 4 to 64 tokens
            folder / "papers.jsonl.gz",
            [{"paper_id": f"p{i}", "title": TOPICS[i % 4], "abstract": " ".join([TOPICS[i % 4]] * (i % 3) * 9)}
             for i in range(24)],
        )  # fmt: skip
        task, _ = _task(folder, model=model, config=config)
        task.module.eval()  # no dropout: the two runs must see the same function
        batch = task.mixer.epoch(0)[0]
        step = task.step_inputs(batch)
        bucketed = [g.inputs for g in step.groups if isinstance(g.inputs, BucketedPadded)]
        if budget:
            assert bucketed and any(len(b.chunks) > 1 for b in bucketed)
            one_padded = sum(len(b.inverse) * max(c["input_ids"].shape[1] for c in b.chunks) for b in bucketed)
            assert sum(b.padded_tokens() for b in bucketed) < one_padded
        else:
            assert not bucketed
        loss = task.loss(task.module, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in task.module.named_parameters() if p.grad is not None}
        results[budget] = (loss.item(), grads)
    (loss_a, grads_a), (loss_b, grads_b) = results[0], results[16]
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    assert grads_a.keys() == grads_b.keys() and any(n.startswith("encoder.adapters") for n in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=1e-5, rtol=1e-4, msg=name)


def test_time_budget_stops_early_and_saves_the_model(tmp_path):
    config = make_config(tmp_path, time_budget_s=1e-3)
    result = train_stage2(config, make_tiny_model(), tmp_path / "run", log=None)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result.steps == 1 < summary["total_steps"]
    assert summary["finished"] and summary["stopped_by_time_budget_at_step"] == 1
    assert (tmp_path / "run" / "model" / "sciembed.json").is_file()
    with pytest.raises(ConfigError, match="time_budget_s"):
        make_config(tmp_path, time_budget_s=0)
