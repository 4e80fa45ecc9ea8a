"""Stage-2 training on the generic :class:`~sciembed.train.loop.Trainer`: adapters per format on a frozen
base, or the multi-task baseline (whole encoder).

``train_stage2(config, base, output)`` writes::

    output/model/            a sciembed model folder (base + adapters; multitask: the trained base)
    output/model/heads/      one head per classification / regression task (not needed to embed)
    output/checkpoints/      resume state (the loop's checkpoints: weights, heads, optimizer, RNG, position)
    output/metrics.jsonl     one line per logged step: total and per-task losses, lr, throughput
    output/curves.png        per-task training curves; output/training.png and curve.md (the loop's curve)
    output/stage2.yaml       the config used; output/summary.json

Rerunning the same command resumes from the newest checkpoint. Under ``torchrun`` the loop shards
every mixed batch over the processes and DDP averages the gradients.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ...model import BottleneckConfig, SciEmbedModel, load_model, save_model
from ...model.packed import Packed, no_cudnn_attention, pack_host, trains_packed
from ...model.text import HostPadded
from ..distributed import barrier, cleanup, init_distributed
from ..loop import StopTraining, Trainer, read_metrics, time_budget_hook
from ..losses import triplet_objective
from .buckets import BucketedPadded
from .config import DISTILL_LOSS, Stage2Config
from .data import MixedBatches, TaskExamples, load_all_examples
from .heads import HeadConfig, TaskHead, head_loss, save_heads

MODEL_DIR = "model"


@dataclass(frozen=True)
class Stage2Result:
    """What a stage-2 run did (``summary.json``): ``finished`` once ``steps`` reached ``total_steps`` (or the
    time budget ended training early, ``stopped_by_time_budget_at_step``)."""

    output: Path
    model_dir: Path
    steps: int
    epochs_done: int
    resumed_from_step: int
    seconds: float
    final_losses: dict[str, float] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    total_steps: int = 0
    world_size: int = 1
    task_meta: dict[str, Any] = field(default_factory=dict)
    stopped_by_time_budget_at_step: int | None = None  # the run ended at ``time_budget_s`` (model saved)

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stage2Result:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**values | {"output": Path(data["output"]), "model_dir": Path(data["model_dir"])})

    def summary(self) -> str:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in self.final_losses.items())
        resumed = f" (resumed at step {self.resumed_from_step})" if self.resumed_from_step else ""
        return f"{self.steps} steps{resumed} in {self.seconds:.0f}s; last losses: {losses}; model: {self.model_dir}"


# ---- set-up ---------------------------------------------------------------------------------------------
def prepare_model(model: SciEmbedModel, config: Stage2Config) -> None:
    """Add missing adapters and freeze the base (``adapters``), or check there are none (``multitask``)."""
    if config.mode == "adapters":
        needed = sorted({a for t in config.tasks for a in t.role_adapters.values()})
        for fmt in needed:
            if fmt not in model.adapters:
                model.add_adapter(fmt, BottleneckConfig(reduction_factor=config.reduction_factor))
        model.base.requires_grad_(False)
        model.adapters.requires_grad_(True)
        return
    if len(model.adapters):
        raise ValueError(f"the multi-task baseline trains a base without adapters; this one has {model.formats}")
    model.base.requires_grad_(True)
    model.delta = None  # the whole base is trained: it is no longer "a base + that low-rank delta"


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
            out[name][role] = model.tokenize(texts, max_length=limit)  # the inference path's ids
    return out


# ---- the trained module ---------------------------------------------------------------------------------
@dataclass
class ForwardGroup:
    """The sequences of one batch that go through one adapter (``None``: no adapter), in one forward."""

    adapter: str | None
    inputs: Packed | BucketedPadded | dict[str, torch.Tensor]
    parts: list[tuple[str, str, int]]  # (task, role, sequences) in order


@dataclass
class StepInputs:
    groups: list[ForwardGroup]
    losses: dict[str, str]  # task -> loss kind
    weights: dict[str, float]
    targets: dict[str, torch.Tensor]


class Stage2Module(nn.Module):
    """The encoder and the task heads: what the loop trains and DDP wraps.

    ``forward`` returns each task's weighted mean loss, computed entirely inside the call so that DDP
    sees every parameter a step uses; with ``distill_weight`` > 0 also a ``distill`` entry (see
    :meth:`drift`).
    """

    def __init__(
        self,
        encoder: SciEmbedModel,
        heads: nn.ModuleDict,
        normalize: bool | None,
        margin: float,
        triplet_loss: str = "margin",
        contrastive_scale: float = 20.0,
        distill_weight: float = 0.0,
    ):
        super().__init__()
        self.encoder = encoder
        self.heads = heads
        self.normalize = normalize
        self.margin = margin
        self.triplet_loss = triplet_loss
        self.contrastive_scale = contrastive_scale
        self.distill_weight = distill_weight

    def embed(self, group: ForwardGroup) -> torch.Tensor:
        if isinstance(group.inputs, Packed):
            with no_cudnn_attention(True):
                return self.encoder.forward_packed(group.inputs, format=group.adapter, normalize=self.normalize)
        if isinstance(group.inputs, BucketedPadded):
            chunks = [
                self.encoder(c["input_ids"], c["attention_mask"], format=group.adapter, normalize=self.normalize)
                for c in group.inputs.chunks
            ]
            return torch.cat(chunks)[group.inputs.inverse]
        return self.encoder(
            group.inputs["input_ids"], group.inputs["attention_mask"], format=group.adapter, normalize=self.normalize
        )

    def drift(self, group: ForwardGroup, adapted: torch.Tensor) -> torch.Tensor:
        """The distillation term of one adapter's group: ``1 - cosine(adapted, base)`` per sequence,
        averaged over each (task, role) part's sequences and summed over the parts.

        ``base`` is the same sequences' embedding without any adapter; the base is frozen, so that is
        the starting model's embedding. It runs in eval mode (no dropout: a clean target, as stage 1's
        frozen teacher), without gradients. Scaling mirrors stage 1, whose per-triplet loss is the
        triplet loss plus ``distill_weight`` times the sum of its 3 documents' drifts: here each task's
        loss is a mean over its examples, so each task gets ``distill_weight`` times the sum over its
        roles of the mean drift (3 roles for a triplet task, 1 for a head task), and weight 1.0 is as
        strong against each task's loss as in stage 1. Task weights do not scale it (they weigh the
        tasks' objectives, not how much of the start to keep).
        """
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                base = self.embed(dataclasses.replace(group, adapter=None)).float()
        finally:
            self.encoder.train(was_training)
        per_sequence = 1.0 - nn.functional.cosine_similarity(adapted, base, dim=-1)
        parts = per_sequence.split([count for _, _, count in group.parts])
        return torch.stack([part.mean() for part in parts]).sum()

    def forward(self, step: StepInputs) -> dict[str, torch.Tensor]:
        embedded: dict[tuple[str, str], torch.Tensor] = {}
        drifts: list[torch.Tensor] = []
        for group in step.groups:
            adapted = self.embed(group).float()
            if self.distill_weight > 0 and group.adapter is not None:
                drifts.append(self.drift(group, adapted))
            vectors = adapted.split([count for _, _, count in group.parts])
            for (task, role, _), chunk in zip(group.parts, vectors, strict=True):
                embedded[(task, role)] = chunk
        losses: dict[str, torch.Tensor] = {}
        if drifts:
            losses[DISTILL_LOSS] = self.distill_weight * torch.stack(drifts).sum()
        for task, kind in step.losses.items():
            if kind == "triplet":
                query, pos, neg = (embedded[(task, role)] for role in ("query", "pos", "neg"))
                loss = triplet_objective(self.triplet_loss, query, pos, neg, self.margin, self.contrastive_scale)
            else:
                loss = head_loss(kind, self.heads[task](embedded[(task, "paper")]), step.targets[task])
            losses[task] = loss * step.weights[task]
        return losses


# ---- the task the loop runs -----------------------------------------------------------------------------
class Stage2Task:
    """The stage-2 :class:`~sciembed.train.loop.TrainTask`: mixed proportional batches of (task, index)
    pairs; the loss of a batch is the sum of its per-task mean losses (times the batch size, because
    the loop divides by it)."""

    def __init__(
        self,
        model: SciEmbedModel,
        examples: dict[str, TaskExamples],
        tokens: dict[str, dict[str, list[list[int]]]],
        config: Stage2Config,
        device: torch.device,
    ):
        self.model = model
        self.examples = examples
        self.tokens = tokens
        self.config = config
        self.device = device
        self.mixer = MixedBatches({n: len(e) for n, e in examples.items()}, config.batch_size, config.seed)
        heads = build_heads(examples, model.hidden_size, config.head_dropout)
        normalize = False if config.loss_embedding == "raw" else None
        self.module = Stage2Module(
            model,
            heads,
            normalize,
            config.triplet_margin,
            config.triplet_loss,
            config.contrastive_scale,
            config.distill_weight,
        )
        self.packed = device.type == "cuda" and trains_packed(model.base)
        self.pin = config.pin_memory and device.type == "cuda"
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    # ---- data ---------------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return self.mixer.steps_per_epoch()

    def batches(self, epoch: int, start: int = 0) -> Iterator[Sequence[tuple[str, int]]]:
        yield from self.mixer.epoch(epoch)[start:]

    def _to_device(self, seqs: list[list[int]]) -> Packed | BucketedPadded | dict[str, torch.Tensor]:
        if self.packed:
            return pack_host(seqs, pin=self.pin).to(self.device)[0]
        overhead = self.config.bucket_overhead_tokens
        if overhead:  # not packed (MPNet, the CPU): length buckets instead of one padded batch
            return BucketedPadded.of(seqs, self.model.pad_id, overhead, self.device, self.pin)
        return HostPadded.of(seqs, self.model.pad_id, self.pin).to(self.device)

    def step_inputs(self, items: Sequence[tuple[str, int]]) -> StepInputs:
        """One forward per adapter over all its sequences of ``items``, plus the heads' targets."""
        grouped = MixedBatches.by_task(items)
        use_adapters = self.config.mode == "adapters"
        plan: dict[str | None, list[tuple[str, str, list[int]]]] = {}
        for name, idx in grouped.items():
            for role, adapter in self.examples[name].task.role_adapters.items():
                plan.setdefault(adapter if use_adapters else None, []).append((name, role, idx))
        groups = []
        for adapter, parts in plan.items():
            seqs = [self.tokens[name][role][i] for name, role, idx in parts for i in idx]
            groups.append(ForwardGroup(adapter, self._to_device(seqs), [(n, r, len(i)) for n, r, i in parts]))
        targets = {
            name: self.examples[name].targets[idx].to(self.device, non_blocking=True)
            for name, idx in grouped.items()
            if self.examples[name].task.loss != "triplet"
        }
        return StepInputs(
            groups=groups,
            losses={name: self.examples[name].task.loss for name in grouped},
            weights={name: self.config.weight(self.examples[name].task) for name in grouped},
            targets=targets,
        )

    # ---- loss ---------------------------------------------------------------------------------------
    def loss(self, module: nn.Module, items: Sequence[tuple[str, int]]) -> torch.Tensor:
        losses = module(self.step_inputs(items))
        for name, value in losses.items():
            self._sums[name] = self._sums.get(name, 0.0) + value.detach().float()
            self._counts[name] = self._counts.get(name, 0) + 1
        return sum(losses.values()) * len(items)

    def train_metrics(self) -> dict[str, Any]:
        """Mean loss per task over the forwards since the last call (read at logging steps only)."""
        means = {name: float(total) / self._counts[name] for name, total in sorted(self._sums.items())}
        self._sums, self._counts = {}, {}
        return {"task_losses": means}

    def validate(self, model: nn.Module, step: int) -> dict[str, float]:
        return {}  # stage 2 is judged on sciembed-lite after training (docs/TRAINING.md)


# ---- the entry point ------------------------------------------------------------------------------------
def train_stage2(
    config: Stage2Config,
    base: str | Path | SciEmbedModel,
    output: str | Path,
    device: str | None = None,
    stop_after_steps: int | None = None,
    log: Callable[[str], None] | None = print,
) -> Stage2Result:
    """Train stage 2 (``config.mode``: ``adapters`` or ``multitask``) from ``base`` into ``output``.

    ``config.time_budget_s`` ends training at the first step after that many seconds since this call
    began (loading and tokenising included) and saves the model as it is then (the learning-rate
    schedule is cut short; ``summary.json`` says at which step).
    ``stop_after_steps`` ends the run after that many steps in total with a checkpoint to resume
    from, as if it had been killed there; the learning-rate schedule still spans the full run.
    """
    start = time.perf_counter()
    output = Path(output)
    config = dataclasses.replace(config, output_dir=str(output), device=device or config.device)
    info = init_distributed(config.device)
    say = log if (log is not None and info.is_main) else (lambda _text: None)
    try:
        torch.manual_seed(config.seed)
        model = base if isinstance(base, SciEmbedModel) else load_model(base)
        model.to(device="cpu", dtype=torch.float32)
        prepare_model(model, config)
        examples = load_all_examples(config)
        say("stage 2 (" + config.mode + "): " + ", ".join(f"{n} {len(e)}" for n, e in examples.items()))
        tokens = tokenize_examples(model, examples, config.max_length)
        task = Stage2Task(model, examples, tokens, config, info.device)
        hooks = []
        if stop_after_steps is not None:

            def stop_hook(trainer: Trainer, state) -> None:
                if state.step >= stop_after_steps:
                    trainer.checkpoint()
                    raise StopTraining

            hooks.append(stop_hook)
        out_of_time: list[int] = []
        if config.time_budget_s is not None:
            if info.world_size > 1:  # ranks would disagree on the step to stop at
                raise ValueError("time_budget_s is for single-process runs; use max_steps under torchrun")
            hooks.append(time_budget_hook(config.time_budget_s, start, say, out_of_time))
        trainer = Trainer(config, task.module, task, dist=info, hooks=hooks, log=say)
        if info.is_main:
            output.mkdir(parents=True, exist_ok=True)
            (output / "stage2.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        try:
            state = trainer.fit()
        except StopTraining:
            state = trainer.state
        model_dir = output / MODEL_DIR
        finished = state.step >= trainer.total_steps or bool(out_of_time)
        if info.is_main and finished:
            model.eval()
            save_model(model, model_dir, dtype=config.save_dtype)
            save_heads(task.module.heads, model_dir)
            write_plots(output, f"stage 2 ({config.mode})", say)
        records = [r for r in read_metrics(output) if r.get("kind") == "train"]
        last = records[-1] if records else {}
        result = Stage2Result(
            output=output,
            model_dir=model_dir,
            steps=state.step,
            epochs_done=state.epoch,
            resumed_from_step=trainer.resumed_from_step,
            seconds=time.perf_counter() - start,
            final_losses={"total": last["loss"], **last.get("task_losses", {})} if last else {},
            examples={n: len(e) for n, e in examples.items()},
            finished=finished,
            total_steps=trainer.total_steps,
            world_size=info.world_size,
            task_meta={n: e.meta() for n, e in examples.items()},
            stopped_by_time_budget_at_step=out_of_time[0] if out_of_time else None,
        )
        if info.is_main:
            (output / "summary.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
        barrier(info)
        return result
    finally:
        cleanup(info)


# ---- curves ---------------------------------------------------------------------------------------------
def write_plots(output: Path, title: str, log: Callable[[str], None]) -> None:
    """The loop's curve (``training.png``, ``curve.md``) and the per-task curves (``curves.png``)."""
    try:
        from ..plots import write_curve

        records = read_metrics(output)
        write_curve(records, output)
        plot_curves(records, output / "curves.png", title=title)
    except Exception as exc:  # noqa: BLE001  a plot must not fail a finished run
        log(f"warning: could not draw the training curves: {exc}")


def plot_curves(records: Sequence[dict[str, Any]], out: Path, title: str = "stage 2") -> Path | None:
    """Total and per-task training losses against steps (PNG), from the loop's metric records."""
    rows = [r for r in records if r.get("kind") == "train"]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({k for r in rows for k in r.get("task_losses", {})})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    axes[0].plot([r["step"] for r in rows], [r["loss"] for r in rows], label="total (sum of task means)")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    for task in tasks:
        pts = [(r["step"], r["task_losses"][task]) for r in rows if task in r.get("task_losses", {})]
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
