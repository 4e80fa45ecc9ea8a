"""Task heads (dropout 0.2 + linear) and the per-format losses of stage 2.

Heads are saved beside the adapters as ``heads/<task>/head.safetensors`` + ``head.json``; they are
only needed to continue training or to predict a task's labels, never to embed
(:func:`sciembed.model.load_model` does not read them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

HEADS_DIR = "heads"
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"


@dataclass
class HeadConfig:
    task: str
    format: str
    loss: str
    adapter: str
    in_features: int
    out_features: int
    dropout: float = 0.2
    labels: list[str] | None = None
    label_mean: float = 0.0
    label_std: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


class TaskHead(nn.Module):
    """Dropout then a linear layer on the pooled embedding."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.linear = nn.Linear(config.in_features, config.out_features)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(embeddings))


def save_heads(heads: dict[str, TaskHead] | nn.ModuleDict, folder: str | Path) -> Path:
    """Write every head as ``folder/heads/<task>/`` (fp32 safetensors + JSON config)."""
    root = Path(folder) / HEADS_DIR
    for name, head in heads.items():
        target = root / name
        target.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()}
        save_file(state, str(target / HEAD_WEIGHTS))
        (target / HEAD_CONFIG).write_text(json.dumps(asdict(head.config), indent=2) + "\n")
    return root


def load_heads(folder: str | Path, device: str | torch.device | None = None) -> dict[str, TaskHead]:
    """The heads saved by :func:`save_heads` under ``folder/heads/`` (empty when there are none)."""
    root = Path(folder) / HEADS_DIR
    heads: dict[str, TaskHead] = {}
    if not root.is_dir():
        return heads
    for target in sorted(p for p in root.iterdir() if (p / HEAD_CONFIG).is_file()):
        config = HeadConfig(**json.loads((target / HEAD_CONFIG).read_text()))
        head = TaskHead(config)
        head.load_state_dict(load_file(str(target / HEAD_WEIGHTS)))
        heads[config.task] = head.to(device) if device is not None else head
    return heads


# ---- losses ---------------------------------------------------------------------------------------------
def triplet_loss(query: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """SPECTER's ``max(||q-p||_2 - ||q-n||_2 + margin, 0)``, mean over the batch (the stage-1 core's loss)."""
    from ..losses import triplet_margin_loss

    return triplet_margin_loss(query, pos, neg, margin)


def head_loss(loss: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (``ce``), BCE-with-logits (``bce``) or MSE (``mse``), mean over the batch."""
    outputs = outputs.float()
    if loss == "ce":
        return F.cross_entropy(outputs, targets.long())
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(outputs, targets.float())
    if loss == "mse":
        return F.mse_loss(outputs.reshape(-1), targets.float().reshape(-1))
    raise ValueError(f"unknown head loss {loss!r}")
