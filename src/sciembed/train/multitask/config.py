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

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ...model.formats import FORMATS

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
class Stage2Config:
    """Everything a stage-2 run needs besides the base model.

    ``mode``: ``adapters`` (base frozen, one adapter per format) or ``multitask`` (the whole
    encoder trained, no adapters: the multi-task baseline). ``batch_size`` is per optimizer step
    over all processes. ``precision``: ``bf16`` autocast on CUDA (fp32 on CPU) or ``fp32``.
    """

    tasks: list[TaskConfig]
    papers: str | None = None
    root: str | None = None
    mode: str = "adapters"
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    epochs: int = 2
    max_steps: int | None = None
    max_length: int = 256
    seed: int = 42
    precision: str = "bf16"
    reduction_factor: float = 16
    head_dropout: float = 0.2
    triplet_margin: float = 1.0
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 200
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {MODES}")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if not self.tasks:
            raise ValueError("a stage-2 config needs at least one task")

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        if path.is_absolute() or self.root is None:
            return path
        return Path(self.root) / path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: str | Path | None = None) -> Stage2Config:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        if "mixture" in data:  # tasks (and papers table) from a mixture folder written by build_mixture
            mixture = Path(data.pop("mixture"))
            if not mixture.is_absolute() and root is not None and not mixture.exists():
                mixture = Path(root) / mixture
            generated = yaml.safe_load((mixture / "stage2.yaml").read_text())
            data.setdefault("tasks", generated["tasks"])
            data.setdefault("papers", generated.get("papers"))
            data["root"] = str(mixture)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"stage-2 config: unknown keys {unknown}")
        tasks = [t if isinstance(t, TaskConfig) else TaskConfig(**t) for t in data.pop("tasks", [])]
        if data.get("root") is None and root is not None:
            data["root"] = str(root)
        return cls(tasks=tasks, **data)


def load_stage2_config(path: str | Path, **overrides: Any) -> Stage2Config:
    """Read a stage-2 YAML config; relative data paths are relative to its folder (or its ``root``).

    ``overrides`` (e.g. ``mode="multitask"``, ``max_steps=10``) replace the file's values when not None.
    """
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    data.update({k: v for k, v in overrides.items() if v is not None})
    root = data.get("root")
    if root is not None and not Path(root).is_absolute():
        data["root"] = str(path.parent / root)
    return Stage2Config.from_dict(data, root=path.parent)
