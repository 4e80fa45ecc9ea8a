"""Losses on embeddings (pure functions of tensors)."""

from __future__ import annotations

import torch


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean distance ``||a - b||_2`` (no epsilon; its gradient at 0 is 0)."""
    return torch.linalg.vector_norm(a - b, ord=2, dim=-1)


def triplet_margin_loss(
    query: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """SPECTER's loss ``max(||q - p||_2 - ||q - n||_2 + margin, 0)``; ``reduction``: mean, sum or none.

    Computed in fp32 whatever the input dtype.
    """
    q, p, n = query.float(), pos.float(), neg.float()
    losses = torch.clamp(l2_distance(q, p) - l2_distance(q, n) + margin, min=0.0)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    raise ValueError(f"unknown reduction {reduction!r} (mean, sum or none)")


def triplet_correct(query: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Boolean per triplet: ``d(q, pos) < d(q, neg)`` (the triplet accuracy's numerator)."""
    q, p, n = query.float(), pos.float(), neg.float()
    return l2_distance(q, p) < l2_distance(q, n)
