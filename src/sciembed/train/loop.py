"""The generic training loop: accumulation, clipping, bf16 autocast, checkpoints, logging, validation.

A stage plugs in a *task* (see :class:`TrainTask`): it owns the data (global batches in a
deterministic order that can be re-entered at any batch), the loss of a list of examples and
validation. The loop owns everything else and is the same for one process and for ``torchrun``:

* a global batch (``batch_size`` examples) is cut into ``grad_accum_steps`` micro-batches, and each
  micro-batch is sharded over the ranks (every ``world_size``-th example);
* the task returns the *sum* of per-example losses of its shard; the loop scales it by
  ``world_size / len(global batch)`` so that the gradient after DDP's averaging and accumulation is
  exactly that of the mean loss over the global batch (uneven shards included);
* the host reads numbers from the GPU only at logging steps (no per-step sync).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..data.progress import progress_bar
from .checkpoint import TrainState, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import LoopConfig, to_dict
from .distributed import DistInfo, all_reduce_sum, barrier, init_distributed, shard, wrap_model
from .optim import build_optimizer, build_scheduler

METRICS_FILE = "metrics.jsonl"


class TrainTask(Protocol):
    """What a training stage provides to :class:`Trainer`."""

    def steps_per_epoch(self) -> int:
        """Global batches (= optimizer steps) in one epoch."""
        ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[Sequence[Any]]:
        """The global batches of ``epoch`` from batch ``start`` on; the same for a seed on every rank."""
        ...

    def loss(self, module: nn.Module, items: Sequence[Any]) -> torch.Tensor:
        """The sum (not the mean) of per-example losses of ``items`` through ``module`` (DDP-wrapped or not)."""
        ...

    def validate(self, model: nn.Module, step: int) -> dict[str, float]:
        """Validation metrics (rank 0 only; the model is in eval mode, gradients off)."""
        ...

    # Optional: ``train_metrics() -> dict`` is merged into every logged training record.


Hook = Callable[["Trainer", TrainState], None]


class StopTraining(Exception):
    """Raised by a hook to end training after the current step (the hook checkpoints first)."""


def time_budget_hook(budget_s: float, start: float, say: Callable[[str], None], stopped_at: list[int]) -> Hook:
    """A hook that ends training (checkpoint, then :class:`StopTraining`) at the first step after
    ``budget_s`` seconds since ``start`` (``time.perf_counter()``); the step is appended to ``stopped_at``.
    Single process only: ranks would disagree on the step to stop at."""

    def hook(trainer: Trainer, state: TrainState) -> None:
        if time.perf_counter() - start >= budget_s and state.step < trainer.total_steps:
            say(f"time budget of {budget_s:.0f} s reached at step {state.step}: stopping")
            stopped_at.append(state.step)
            trainer.checkpoint()
            raise StopTraining

    return hook


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def enable_gradient_checkpointing(model: nn.Module) -> int:
    """Turn on non-reentrant gradient checkpointing in every Hugging Face submodule; returns how many."""
    count = 0
    for module in model.modules():
        enable = getattr(module, "gradient_checkpointing_enable", None)
        if callable(enable) and getattr(module, "supports_gradient_checkpointing", False):
            enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            count += 1
    if count == 0:
        raise ValueError("gradient_checkpointing: the model has no Hugging Face module that supports it")
    return count


class Trainer:
    """Runs a :class:`TrainTask` with the settings of a :class:`LoopConfig`.

    ``hooks`` are called after every optimizer step (after logging, validation and checkpointing of
    that step) with the trainer and its :class:`TrainState`; raising from a hook stops training.
    """

    def __init__(
        self,
        config: LoopConfig,
        model: nn.Module,
        task: TrainTask,
        dist: DistInfo | None = None,
        hooks: Sequence[Hook] = (),
        log: Callable[[str], None] | None = None,
    ):
        self.config = config
        self.dist = dist or init_distributed(config.device)
        self.task = task
        self.hooks = list(hooks)
        self.output_dir = Path(config.output_dir)
        self._log = log or (lambda text: print(text, flush=True))
        seed_everything(config.seed + self.dist.rank)
        self.model = model.to(device=self.dist.device, dtype=torch.float32)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        self.model.train()
        self.module = wrap_model(self.model, self.dist, config.ddp_find_unused_parameters)
        self.optimizer = build_optimizer(self.model, config.optim)
        per_epoch = task.steps_per_epoch()
        if per_epoch < 1:
            raise ValueError("the training data gives no full batch: lower batch_size or add data")
        self.steps_per_epoch = per_epoch
        total = per_epoch * config.epochs
        self.total_steps = min(total, config.max_steps) if config.max_steps is not None else total
        self.scheduler = build_scheduler(self.optimizer, config.optim, self.total_steps)
        self.state = TrainState()
        self.resumed_from_step = 0
        self.use_bf16 = self.dist.device.type == "cuda" and config.precision in ("auto", "bf16")
        self.history: list[dict[str, Any]] = []
        self.last_lr = self.scheduler.get_last_lr()[0]

    # ---- pieces -------------------------------------------------------------------------------------
    def autocast(self):
        if self.use_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def log(self, text: str) -> None:
        if self.dist.is_main:
            self._log(text)

    def accumulate(self, batch: Sequence[Any]) -> torch.Tensor:
        """Forward and backward of one global batch (all micro-batches, this rank's shards), no step.

        Returns this rank's summed loss (detached). Gradients are left in ``.grad``: after it, every
        rank holds the gradient of the mean loss over the whole global batch.
        """
        total = len(batch)
        world = self.dist.world_size
        parts = self.config.grad_accum_steps
        bounds = [round(i * total / parts) for i in range(parts + 1)]
        loss_sum = torch.zeros((), device=self.dist.device)
        scale = world / total
        for index in range(parts):
            micro = batch[bounds[index] : bounds[index + 1]]
            if len(micro) < world:
                raise ValueError(
                    f"a micro-batch of {len(micro)} examples cannot be shared by {world} processes: "
                    "raise batch_size or lower grad_accum_steps"
                )
            items = shard(micro, self.dist.rank, world)
            last = index == parts - 1
            sync = nullcontext() if (last or not self.dist.distributed) else self.module.no_sync()
            with sync:
                with self.autocast():
                    loss = self.task.loss(self.module, items)
                (loss.float() * scale).backward()
            loss_sum += loss.detach().float()
        return loss_sum

    def train_step(self, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimizer step on a global batch; returns (summed local loss, grad norm before clipping)."""
        loss_sum = self.accumulate(batch)
        grad_norm = None
        if self.config.optim.max_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.max_grad_norm)
        self.last_lr = self.scheduler.get_last_lr()[0]  # the rate this step trains with
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, grad_norm

    # ---- resume -------------------------------------------------------------------------------------
    def maybe_resume(self) -> bool:
        choice = self.config.resume
        if choice == "never":
            return False
        folder = latest_checkpoint(self.output_dir) if choice == "auto" else Path(choice)
        if folder is None:
            return False
        self.state = load_checkpoint(folder, self.model, self.optimizer, self.scheduler)
        self.resumed_from_step = self.state.step
        if self.dist.distributed:  # per-rank dropout streams: the checkpoint holds rank 0's
            torch.manual_seed(self.config.seed + 7919 * self.state.step + self.dist.rank)
        self.log(f"resumed from {folder} (step {self.state.step}, epoch {self.state.epoch})")
        return True

    def _trim_metrics(self) -> None:
        """Drop metric lines past the resumed step (a killed run may have logged beyond its checkpoint)."""
        path = self.output_dir / METRICS_FILE
        if not self.dist.is_main or not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("step", 0) <= self.state.step:
                kept.append(line)
        path.write_text("".join(k + "\n" for k in kept))
        self.history = [json.loads(k) for k in kept]

    def write_metrics(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.history.append(record)
        with open(self.output_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def checkpoint(self) -> None:
        if self.dist.is_main:
            save_checkpoint(
                self.output_dir,
                self.model,
                self.optimizer,
                self.scheduler,
                self.state,
                keep=self.config.keep_checkpoints,
                config=to_dict(self.config),
            )
        barrier(self.dist)

    def validate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.dist.is_main:
            self.model.eval()
            start = time.perf_counter()
            with torch.no_grad(), self.autocast():
                metrics = dict(self.task.validate(self.model, self.state.step))
            self.model.train()
            record = {"step": self.state.step, "kind": "val", **metrics, "val_s": time.perf_counter() - start}
            self.write_metrics(record)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, int | float))
            self.log(f"step {self.state.step}: validation: {shown or 'no metrics'}")
        barrier(self.dist)
        return metrics

    # ---- the loop -----------------------------------------------------------------------------------
    def fit(self) -> TrainState:
        """Train to ``total_steps`` (resuming first when a checkpoint is there); returns the final state."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.maybe_resume()
        if resumed:
            self._trim_metrics()
        elif self.dist.is_main:
            (self.output_dir / METRICS_FILE).write_text("")
        config = self.config
        self.log(
            f"training: {self.total_steps} steps ({self.steps_per_epoch} per epoch), global batch "
            f"{config.batch_size} x {self.dist.world_size} process(es) / {config.grad_accum_steps} accumulation, "
            f"device {self.dist.device}, {'bf16 autocast' if self.use_bf16 else 'fp32'}"
        )
        if not resumed and config.validate_at_start:
            self.validate()
        show = self.config.progress and self.dist.is_main
        progress = progress_bar(self.total_steps, show, desc="training", unit="step", initial=self.state.step)
        running = torch.zeros((), device=self.dist.device)
        running_n = 0
        window_start = time.perf_counter()
        grad_norm: torch.Tensor | None = None
        state = self.state
        while state.step < self.total_steps:
            for batch in self.task.batches(state.epoch, state.batch_in_epoch):
                loss_sum, grad_norm = self.train_step(batch)
                running += loss_sum
                running_n += len(batch)
                state.step += 1
                state.batch_in_epoch += 1
                state.examples_seen += len(batch)
                last = state.step >= self.total_steps
                if state.step % config.log_every == 0 or last:
                    total = all_reduce_sum(running.clone(), self.dist)
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "step": state.step,
                        "kind": "train",
                        "epoch": state.epoch + state.batch_in_epoch / self.steps_per_epoch,
                        "loss": float(total.item()) / max(1, running_n),
                        "lr": self.last_lr,
                        "grad_norm": float(grad_norm.item()) if grad_norm is not None else None,
                        "examples_per_s": running_n / elapsed if elapsed > 0 else None,
                        "examples_seen": state.examples_seen,
                    }
                    task_metrics = getattr(self.task, "train_metrics", None)
                    if callable(task_metrics):  # e.g. stage 2's per-task losses since the last log line
                        record.update(task_metrics())
                    if self.dist.device.type == "cuda":
                        record["max_memory_gb"] = torch.cuda.max_memory_allocated(self.dist.device) / 2**30
                    self.write_metrics(record)
                    progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                    running.zero_()
                    running_n = 0
                    window_start = time.perf_counter()
                progress.update(1)
                if (config.validate_every and state.step % config.validate_every == 0) or last:
                    self.validate()
                    window_start = time.perf_counter()
                if (config.checkpoint_every and state.step % config.checkpoint_every == 0) or last:
                    self.checkpoint()
                    window_start = time.perf_counter()
                for hook in self.hooks:
                    hook(self, state)
                if last:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
                continue
            break
        progress.close()
        return state


def read_metrics(output_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(output_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def isfinite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
