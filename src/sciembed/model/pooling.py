"""Pooling token states into one vector per document."""

from __future__ import annotations

import torch

POOLING_MODES = ("cls", "mean")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """``cls``: the first token's state (SPECTER/SPECTER2); ``mean``: masked mean (sentence-transformers)."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    raise ValueError(f"unknown pooling {mode!r}; known: {POOLING_MODES}")
