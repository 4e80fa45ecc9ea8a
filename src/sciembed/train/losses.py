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


TRIPLET_LOSSES = ("margin", "contrastive")


def in_batch_contrastive_loss(
    query: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    scale: float = 20.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multiple-negatives ranking loss with hard negatives (the loss all-MiniLM-L6-v2 was trained with).

    Each query is scored by scaled cosine similarity against every positive and every mined negative
    of the batch; cross-entropy picks its own positive. Computed in fp32.
    """
    q = torch.nn.functional.normalize(query.float(), dim=-1)
    candidates = torch.nn.functional.normalize(torch.cat([pos.float(), neg.float()]), dim=-1)
    scores = scale * q @ candidates.T
    target = torch.arange(len(q), device=q.device)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"unknown reduction {reduction!r} (mean, sum or none)")
    return torch.nn.functional.cross_entropy(scores, target, reduction=reduction)


def triplet_objective(
    kind: str,
    query: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    margin: float = 1.0,
    scale: float = 20.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """The proximity / search loss by name: SPECTER's ``margin`` loss or the in-batch ``contrastive`` one."""
    if kind == "margin":
        return triplet_margin_loss(query, pos, neg, margin, reduction)
    if kind == "contrastive":
        return in_batch_contrastive_loss(query, pos, neg, scale, reduction)
    raise ValueError(f"unknown triplet loss {kind!r}; known: {TRIPLET_LOSSES}")
