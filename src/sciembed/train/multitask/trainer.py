"""Stage-2 training: adapters per format on a frozen base, or the multi-task baseline (whole encoder).

``train_stage2(config, base, output)`` writes::

    output/model/            a sciembed model folder (base + adapters; multitask: the trained base)
    output/model/heads/      one head per classification / regression task (not needed to embed)
    output/checkpoint/       resume state (trainable weights, heads, optimizer, schedule, RNG, position)
    output/log.jsonl         one line per logged step: total and per-task losses, lr, throughput
    output/curves.png        training curves; output/summary.json; output/stage2.yaml (the config used)

Rerunning the same command resumes from ``output/checkpoint``. Under ``torchrun`` every process
takes its own share of each epoch's mixed batches and gradients are averaged across processes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ...model import BottleneckConfig, SciEmbedModel, load_model, save_model
from .config import Stage2Config
from .data import MixedBatches, TaskExamples, load_all_examples
from .heads import HeadConfig, TaskHead, head_loss, save_heads, triplet_loss

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"


@dataclass
class Stage2Result:
    output: Path
    model_dir: Path
    steps: int
    epochs_done: int
    resumed_from_step: int
    seconds: float
    final_losses: dict[str, float] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in self.final_losses.items())
        resumed = f" (resumed at step {self.resumed_from_step})" if self.resumed_from_step else ""
        return f"{self.steps} steps{resumed} in {self.seconds:.0f}s; last losses: {losses}; model: {self.model_dir}"


# ---- distributed ----------------------------------------------------------------------------------------
def _dist_setup(device: str | None) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    if device is not None:
        dev = torch.device(device)
    elif torch.cuda.is_available():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        dev = torch.device("cpu")
    return rank, world, dev


def _average_gradients(params: list[nn.Parameter], world: int) -> None:
    if world <= 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad)
        p.grad.div_(world)


# ---- set-up ---------------------------------------------------------------------------------------------
def prepare_model(model: SciEmbedModel, config: Stage2Config) -> list[nn.Parameter]:
    """Add missing adapters and freeze the base (``adapters``) or drop adapters (``multitask``).

    Returns the encoder parameters to train.
    """
    if config.mode == "adapters":
        needed = sorted({a for t in config.tasks for a in t.role_adapters.values()})
        for fmt in needed:
            if fmt not in model.adapters:
                model.add_adapter(fmt, BottleneckConfig(reduction_factor=config.reduction_factor))
        model.base.requires_grad_(False)
        model.adapters.requires_grad_(True)
        return list(model.adapters.parameters())
    if len(model.adapters):
        raise ValueError(f"the multi-task baseline trains a base without adapters; this one has {model.formats}")
    model.base.requires_grad_(True)
    return list(model.base.parameters())


def build_heads(examples: dict[str, TaskExamples], hidden: int, dropout: float) -> nn.ModuleDict:
    heads = nn.ModuleDict()
    for name, ex in examples.items():
        if ex.task.loss == "triplet":
            continue
        heads[name] = TaskHead(
            HeadConfig(
                task=name,
                format=ex.task.format,
                loss=ex.task.loss,
                adapter=ex.task.adapter,
                in_features=hidden,
                out_features=ex.num_outputs,
                dropout=dropout,
                labels=ex.label_names,
                label_mean=ex.label_mean,
                label_std=ex.label_std,
            )
        )
    return heads


def tokenize_examples(
    model: SciEmbedModel, examples: dict[str, TaskExamples], max_length: int
) -> dict[str, dict[str, list[list[int]]]]:
    """Token ids per task and role (truncated to ``max_length``; no padding)."""
    limit = min(max_length, model.config.max_length)
    out: dict[str, dict[str, list[list[int]]]] = {}
    for name, ex in examples.items():
        out[name] = {}
        for role, docs in ex.roles.items():
            texts = model.texts(docs, ex.task.fields if not isinstance(docs[0], str) else ("title",))
            encoded = model.tokenizer(
                texts,
                truncation=True,
                max_length=limit,
                add_special_tokens=True,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
            out[name][role] = encoded["input_ids"]
    return out


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "norm" in name.lower()


def make_optimizer(model: SciEmbedModel, heads: nn.ModuleDict, config: Stage2Config) -> torch.optim.Optimizer:
    decay, plain = [], []
    named = list(model.named_parameters()) + [(f"heads.{n}", p) for n, p in heads.named_parameters()]
    for name, param in named:
        if param.requires_grad:
            (plain if _no_decay(name) else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    fused = {"fused": True} if next(model.parameters()).is_cuda else {}
    return torch.optim.AdamW(groups, lr=config.lr, **fused)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---- one step -------------------------------------------------------------------------------------------
def compute_losses(
    model: SciEmbedModel,
    heads: nn.ModuleDict,
    examples: dict[str, TaskExamples],
    tokens: dict[str, dict[str, list[list[int]]]],
    batch: list[tuple[str, int]],
    config: Stage2Config,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Per-task mean losses of one mixed batch; each adapter runs once over all its sequences."""
    grouped = MixedBatches.by_task(batch)
    use_adapters = config.mode == "adapters"
    # adapter -> list of (task, role, indices); sequences concatenated in that order
    plan: dict[str | None, list[tuple[str, str, list[int]]]] = {}
    for name, idx in grouped.items():
        for role, adapter in examples[name].task.role_adapters.items():
            plan.setdefault(adapter if use_adapters else None, []).append((name, role, idx))
    embedded: dict[tuple[str, str], torch.Tensor] = {}
    autocast = config.precision == "bf16" and device.type == "cuda"
    for adapter, parts in plan.items():
        seqs = [tokens[name][role][i] for name, role, idx in parts for i in idx]
        tensors = {k: v.to(device, non_blocking=True) for k, v in model.collate(seqs).items()}
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            vectors = model(tensors["input_ids"], tensors["attention_mask"], format=adapter)
        start = 0
        for name, role, idx in parts:
            embedded[(name, role)] = vectors[start : start + len(idx)]
            start += len(idx)
    losses: dict[str, torch.Tensor] = {}
    for name, idx in grouped.items():
        ex = examples[name]
        if ex.task.loss == "triplet":
            losses[name] = triplet_loss(
                embedded[(name, "query")], embedded[(name, "pos")], embedded[(name, "neg")], config.triplet_margin
            )
        else:
            outputs = heads[name](embedded[(name, "paper")].float())
            targets = ex.targets[idx].to(device)
            losses[name] = head_loss(ex.task.loss, outputs, targets)
        losses[name] = losses[name] * ex.task.weight
    return losses


# ---- checkpoints ----------------------------------------------------------------------------------------
def _trainable_state(model: SciEmbedModel, config: Stage2Config) -> dict[str, torch.Tensor]:
    module = model.adapters if config.mode == "adapters" else model.base
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, model, heads, optimizer, scheduler, config, position: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    state = {
        "mode": config.mode,
        "formats": model.formats,
        "trainable": _trainable_state(model, config),
        "heads": {k: v.detach().cpu() for k, v in heads.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "position": position,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
    }
    tmp = path / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path / CHECKPOINT_FILE)


def load_checkpoint(path: Path, model, heads, optimizer, scheduler, config) -> dict[str, Any] | None:
    file = path / CHECKPOINT_FILE
    if not file.is_file():
        return None
    state = torch.load(file, map_location="cpu", weights_only=False)
    if state["mode"] != config.mode:
        raise ValueError(f"{file} is a {state['mode']!r} checkpoint, this run is {config.mode!r}")
    module = model.adapters if config.mode == "adapters" else model.base
    module.load_state_dict(state["trainable"])
    heads.load_state_dict(state["heads"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["position"]


# ---- the loop -------------------------------------------------------------------------------------------
def train_stage2(
    config: Stage2Config,
    base: str | Path | SciEmbedModel,
    output: str | Path,
    device: str | None = None,
    resume: bool = True,
    stop_after_steps: int | None = None,
    log: Callable[[str], None] | None = print,
) -> Stage2Result:
    """Train stage 2 (``config.mode``: ``adapters`` or ``multitask``) from ``base`` into ``output``.

    ``stop_after_steps`` ends the run early (as if killed after that many steps in total) and leaves
    a checkpoint to resume from; the learning-rate schedule still spans the full run.
    """
    start_time = time.perf_counter()
    output = Path(output)
    rank, world, dev = _dist_setup(device)
    say = log if (log is not None and rank == 0) else (lambda _msg: None)
    torch.manual_seed(config.seed)

    model = base if isinstance(base, SciEmbedModel) else load_model(base)
    model.to(device=dev, dtype=torch.float32)
    params = prepare_model(model, config)
    examples = load_all_examples(config)
    heads = build_heads(examples, model.hidden_size, config.head_dropout).to(dev)
    say("stage 2 (" + config.mode + "): " + ", ".join(f"{n} {len(e)}" for n, e in examples.items()))
    tokens = tokenize_examples(model, examples, config.max_length)

    per_rank = max(1, config.batch_size // world)
    mixer = MixedBatches({n: len(e) for n, e in examples.items()}, per_rank, config.seed, rank, world)
    steps_per_epoch = mixer.steps_per_epoch()
    total = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total / steps_per_epoch)
    optimizer = make_optimizer(model, heads, config)
    scheduler = linear_schedule(optimizer, int(config.warmup_ratio * total), total)
    trainable = params + list(heads.parameters())

    ckpt_dir = output / CHECKPOINT_DIR
    position = {"step": 0, "epoch": 0, "batch": 0}
    if resume:
        loaded = load_checkpoint(ckpt_dir, model, heads, optimizer, scheduler, config)
        if loaded is not None:
            position = loaded
            say(f"resuming from step {position['step']} (epoch {position['epoch']}, batch {position['batch']})")
    resumed_from = position["step"]
    if rank == 0:
        output.mkdir(parents=True, exist_ok=True)
        (output / "stage2.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    log_path = output / "log.jsonl"

    step = position["step"]
    last: dict[str, float] = {}
    window: dict[str, list[float]] = {}
    window_examples, window_start = 0, time.perf_counter()
    model.train()
    heads.train()
    stop = total if stop_after_steps is None else min(total, stop_after_steps)
    epoch = position["epoch"]
    while step < stop and epoch < epochs:
        batches = mixer.epoch(epoch)
        for b in range(position["batch"] if epoch == position["epoch"] else 0, len(batches)):
            if step >= stop:
                break
            losses = compute_losses(model, heads, examples, tokens, batches[b], config, dev)
            loss = sum(losses.values())
            loss.backward()
            _average_gradients(trainable, world)
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_examples += len(batches[b]) * world
            for name, value in losses.items():
                window.setdefault(name, []).append(float(value.detach()))
            window.setdefault("total", []).append(float(loss.detach()))
            at_end = b + 1 == len(batches)
            if rank == 0 and (step % config.log_every == 0 or step == stop or at_end):
                elapsed = time.perf_counter() - window_start
                last = {k: sum(v) / len(v) for k, v in window.items()}
                row = {
                    "step": step,
                    "epoch": epoch + (b + 1) / len(batches),
                    "lr": scheduler.get_last_lr()[0],
                    "loss": last.pop("total"),
                    "tasks": last,
                    "examples_per_s": window_examples / max(elapsed, 1e-9),
                    "elapsed_s": time.perf_counter() - start_time,
                }
                last = {"total": row["loss"], **row["tasks"]}
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                say(
                    f"step {step}/{total} epoch {row['epoch']:.2f} loss {row['loss']:.4f} lr {row['lr']:.2e} "
                    f"{row['examples_per_s']:.0f} ex/s"
                )
                window, window_examples, window_start = {}, 0, time.perf_counter()
            next_position = {"step": step, "epoch": epoch + 1 if at_end else epoch, "batch": 0 if at_end else b + 1}
            if rank == 0 and (step % config.checkpoint_every == 0 or at_end or step == stop):
                save_checkpoint(ckpt_dir, model, heads, optimizer, scheduler, config, next_position)
        epoch += 1
        position = {"step": step, "epoch": epoch, "batch": 0}

    model_dir = output / "model"
    if rank == 0 and step >= total:
        model.eval()
        save_model(model, model_dir)
        save_heads(heads, model_dir)
        plot_curves(log_path, output / "curves.png", title=f"stage 2 ({config.mode})")
    result = Stage2Result(
        output=output,
        model_dir=model_dir,
        steps=step,
        epochs_done=epoch,
        resumed_from_step=resumed_from,
        seconds=time.perf_counter() - start_time,
        final_losses=last,
        examples={n: len(e) for n, e in examples.items()},
    )
    if rank == 0:
        summary = {
            **{k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()},
            "finished": step >= total,
            "total_steps": total,
            "world_size": world,
            "task_meta": {n: e.meta() for n, e in examples.items()},
        }
        (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if world > 1:
        torch.distributed.barrier()
    return result


def plot_curves(log_path: Path, out: Path, title: str = "stage 2") -> Path | None:
    """Total and per-task training losses against steps (PNG)."""
    if not log_path.is_file():
        return None
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({k for r in rows for k in r["tasks"]})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    axes[0].plot([r["step"] for r in rows], [r["loss"] for r in rows], label="total (sum of task means)")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    for task in tasks:
        pts = [(r["step"], r["tasks"][task]) for r in rows if task in r["tasks"]]
        axes[1].plot([p[0] for p in pts], [p[1] for p in pts], label=task)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("task loss (mean)")
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
