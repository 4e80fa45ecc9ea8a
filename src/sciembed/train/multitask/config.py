"""Stage-2 training tasks as data: a YAML file lists the tasks, the trainer reads nothing else.

A task names its format, data file, text fields, label column, loss, a cap on examples and the
adapter it trains::

    tasks:
      - name: arxiv_primary
        format: classification        # classification | multi_label | regression | proximity | adhoc_search
        data: arxiv_primary.jsonl.gz  # relative to the config file (or to `root`)
        fields: [title, abstract]
        label: label                  # label column (classification / multi_label / regression)
        loss: ce                      # ce | bce | mse | triplet (default: from the format)
        max_examples: 15000
        adapter: classification       # default: from the format

Examples are JSON lines. Classification / regression: ``{"paper": <id or {title, abstract}>, "label": ...}``
(multi-label: a list). Proximity: ``{"query", "pos", "neg"}``, each a paper id or a paper object
(the triplet files of ``sciembed mine-triplets`` as they are). Ad-hoc search: the same, with the
query a plain string. Paper ids are looked up in ``papers`` (a JSON-lines table, ``paper_id``,
``title``, ``abstract``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...model.formats import FORMATS
from ..config import LOSS_EMBEDDINGS, ConfigError, LoopConfig, OptimConfig, apply_overrides, from_dict, read_mapping
from ..losses import TRIPLET_LOSSES

#: format -> (default loss, default adapter)
TASK_FORMATS: dict[str, tuple[str, str]] = {
    "classification": ("ce", "classification"),
    "multi_label": ("bce", "classification"),
    "regression": ("mse", "regression"),
    "proximity": ("triplet", "proximity"),
    "adhoc_search": ("triplet", "adhoc_query"),
}
FORMAT_SYNONYMS = {"multi-label": "multi_label", "multilabel": "multi_label", "search": "adhoc_search"}
LOSSES = ("ce", "bce", "mse", "triplet")
MODES = ("adapters", "multitask")
DISTILL_LOSS = "distill"  # the distillation term's name among the per-task losses (metrics.jsonl)


@dataclass
class TaskConfig:
    """One training task; see the module docstring."""

    name: str
    format: str
    data: str
    fields: list[str] = field(default_factory=lambda: ["title", "abstract"])
    label: str = "label"
    loss: str | None = None
    max_examples: int | None = None
    adapter: str | None = None
    labels: list[str] | None = None
    weight: float = 1.0
    description: str = ""

    def __post_init__(self) -> None:
        self.format = FORMAT_SYNONYMS.get(self.format, self.format)
        if self.format not in TASK_FORMATS:
            raise ValueError(f"task {self.name!r}: unknown format {self.format!r}; known: {sorted(TASK_FORMATS)}")
        default_loss, default_adapter = TASK_FORMATS[self.format]
        self.loss = self.loss or default_loss
        self.adapter = self.adapter or default_adapter
        if self.loss not in LOSSES:
            raise ValueError(f"task {self.name!r}: unknown loss {self.loss!r}; known: {LOSSES}")
        if self.adapter not in FORMATS:
            raise ValueError(f"task {self.name!r}: unknown adapter {self.adapter!r}; known: {FORMATS}")
        if (self.loss == "triplet") != (self.format in ("proximity", "adhoc_search")):
            raise ValueError(f"task {self.name!r}: loss {self.loss!r} does not fit format {self.format!r}")

    @property
    def role_adapters(self) -> dict[str, str]:
        """Which adapter embeds each role of an example (search candidates go through proximity)."""
        if self.format == "adhoc_search":
            return {"query": self.adapter, "pos": "proximity", "neg": "proximity"}
        if self.format == "proximity":
            return {"query": self.adapter, "pos": self.adapter, "neg": self.adapter}
        return {"paper": self.adapter}


@dataclass
class Stage2Config(LoopConfig):
    """Everything a stage-2 run needs besides the base model; the loop settings (batch, epochs,
    ``optim``, precision, checkpoints, resume, logging) are those of :class:`LoopConfig`.

    Fields (besides those of the loop):
      tasks: the training tasks (see the module docstring); ``mixture: FOLDER`` in a YAML file reads
        them (and ``papers``) from a folder written by ``sciembed train build-mixture``.
      papers: JSON-lines paper table that task files refer to by id (relative to ``root``).
      root: folder that relative task paths are relative to (default: the config file's folder).
      mode: ``adapters`` (base frozen, one adapter per format) or ``multitask`` (the whole encoder
        trained, no adapters: the multi-task baseline).
      max_length: truncation in tokens.
      reduction_factor: adapter bottleneck = hidden size / reduction_factor.
      head_dropout: dropout before each task head's linear layer.
      triplet_margin: margin of the proximity / search triplet loss (L2 distance).
      triplet_loss: ``margin`` (SPECTER's loss on L2 distances) or ``contrastive`` (in-batch negatives
        plus the mined hard negative, scaled cosine, cross-entropy: the loss the sentence-transformers
        bases were trained with).
      contrastive_scale: the cosine scale (inverse temperature) of the contrastive loss.
      loss_embedding: ``raw`` (default): heads and triplet losses see the pooled output before
        normalisation (as in stage 1); ``model``: the embedding as served (unit length when the
        model normalises, which squeezes the heads' logits and collapsed the space, docs/TRAINING.md).
      task_weights: loss weight per task name (overrides the task's own ``weight``).
      distill_weight: ``adapters`` mode only: weight of a distillation term that keeps each adapted
        embedding's direction close to the frozen base's own (no adapter) embedding of the same
        sequence, ``1 - cosine``, summed over a task's roles and averaged over its sequences like the
        task losses (stage 1's ``distill_weight`` scaling); logged as the ``distill`` loss; 0: off.
      save_dtype: dtype of the saved model weights (``fp32``, ``fp16``, ``bf16``; null: fp32).
      time_budget_s: stop training (and save the model) at the first step after this many seconds
        since the run began, loading and tokenising included (null: no limit; single process only).
      bucket_overhead_tokens: where training does not take the packed forward (MPNet, any base on CPU), each
        adapter's sequences of a step are sorted by length and cut into length buckets, each padded
        to its own longest, so as to minimise padded tokens plus this cost (in tokens) per extra
        forward (same loss, less padding); 0: one padded forward per adapter.
    """

    tasks: list[TaskConfig] = field(default_factory=list)
    papers: str | None = None
    root: str | None = None
    mode: str = "adapters"
    max_length: int = 256
    reduction_factor: float = 16
    head_dropout: float = 0.2
    triplet_margin: float = 1.0
    triplet_loss: str = "margin"
    contrastive_scale: float = 20.0
    loss_embedding: str = "raw"
    task_weights: dict[str, float] = field(default_factory=dict)
    distill_weight: float = 0.0
    save_dtype: str | None = None
    bucket_overhead_tokens: int = 2048
    time_budget_s: float | None = None
    # loop defaults that differ for stage 2
    batch_size: int = 64
    epochs: int = 2
    checkpoint_every: int = 200
    validate_at_start: bool = False
    ddp_find_unused_parameters: bool = True  # a batch may hold no example of some task (its head idles)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, warmup_ratio=0.06))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; known: {MODES}")
        if not self.tasks:
            raise ConfigError("a stage-2 config needs at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"task names must be unique, got {names}")
        unknown = sorted(set(self.task_weights) - set(names))
        if unknown:
            raise ConfigError(f"task_weights names unknown tasks {unknown}; tasks: {names}")
        if self.loss_embedding not in LOSS_EMBEDDINGS:
            raise ConfigError(f"loss_embedding must be one of {LOSS_EMBEDDINGS}, got {self.loss_embedding!r}")
        if self.distill_weight < 0:
            raise ConfigError(f"distill_weight must be non-negative, got {self.distill_weight}")
        if self.distill_weight > 0 and self.mode != "adapters":
            raise ConfigError(
                f"distill_weight needs mode 'adapters' (a frozen base to distil towards); mode is {self.mode!r}"
            )
        if self.distill_weight > 0 and DISTILL_LOSS in names:
            raise ConfigError(f"a task may not be named {DISTILL_LOSS!r} when distill_weight is on (its loss's name)")
        if self.triplet_loss not in TRIPLET_LOSSES:
            raise ConfigError(f"triplet_loss must be one of {TRIPLET_LOSSES}, got {self.triplet_loss!r}")
        if self.contrastive_scale <= 0:
            raise ConfigError(f"contrastive_scale must be positive, got {self.contrastive_scale}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"time_budget_s must be positive or null, got {self.time_budget_s}")
        if self.bucket_overhead_tokens < 0:
            raise ConfigError(f"bucket_overhead_tokens must be 0 (off) or positive, got {self.bucket_overhead_tokens}")

    def weight(self, task: TaskConfig) -> float:
        return float(self.task_weights.get(task.name, task.weight))

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        if path.is_absolute() or self.root is None:
            return path
        return Path(self.root) / path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: str | Path | None = None) -> Stage2Config:
        """Build from a mapping (as in a YAML file); ``mixture: FOLDER`` supplies tasks and papers."""
        data = dict(data)
        if "mixture" in data:
            mixture = Path(data.pop("mixture"))
            if not mixture.is_absolute() and root is not None and not mixture.exists():
                mixture = Path(root) / mixture
            generated = yaml.safe_load((mixture / "stage2.yaml").read_text())
            data.setdefault("tasks", generated["tasks"])
            data.setdefault("papers", generated.get("papers"))
            data["root"] = str(mixture)
        if data.get("root") is None and root is not None:
            data["root"] = str(root)
        data["tasks"] = [asdict(t) if isinstance(t, TaskConfig) else t for t in data.get("tasks", [])]
        return from_dict(cls, data)


def load_stage2_config(path: str | Path, overrides: list[str] | None = None, **values: Any) -> Stage2Config:
    """Read a stage-2 YAML config; relative data paths are relative to its folder (or its ``root``).

    ``overrides`` are ``key=value`` strings (``optim.lr=3e-5``); ``values`` (e.g. ``mode="multitask"``,
    ``max_steps=10``, ``lr=1e-4`` for ``optim.lr``) replace the file's values when not None.
    """
    path = Path(path)
    data = apply_overrides(read_mapping(path), overrides)
    for key, value in values.items():
        if value is None:
            continue
        if key == "lr":
            data.setdefault("optim", {})["lr"] = value
        else:
            data[key] = value
    root = data.get("root")
    if root is not None and not Path(root).is_absolute():
        data["root"] = str(path.parent / root)
    try:
        return Stage2Config.from_dict(data, root=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
