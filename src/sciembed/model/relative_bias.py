"""MPNet's relative position bias for packed documents.

MPNet adds to every attention score a learnt bias per head and bucket of the relative position
(key position - query position within the document; 32 buckets, exact up to 8 tokens apart, log-spaced
up to 128). For packed documents the bias is a table over the relative positions a batch can have,
``(heads, 2 * max_len - 1)``, built once per batch with the model's own bucketing function (so the
buckets are exactly Hugging Face's) and read by the attention kernel, or expanded to per-document
blocks where attention runs padded.
"""

from __future__ import annotations

import torch
from torch import nn


def has_relative_bias(base: nn.Module) -> bool:
    encoder = getattr(base, "encoder", None)
    return hasattr(encoder, "relative_attention_bias") and hasattr(encoder, "relative_position_bucket")


def relative_bias_table(base: nn.Module, max_len: int, device: torch.device) -> torch.Tensor | None:
    """``table[h, j - i + max_len - 1]``: head h's bias for the query at position i and the key at j
    (fp32; None for bases without a relative bias)."""
    if not has_relative_bias(base):
        return None
    encoder, length = base.encoder, max(max_len, 1)
    relative = torch.arange(1 - length, length, device=device)
    buckets = encoder.relative_position_bucket(relative)  # the defaults MPNetEncoder.compute_position_bias uses
    return encoder.relative_attention_bias(buckets).t().float().contiguous()


def bias_blocks(table: torch.Tensor, queries: torch.Tensor, keys: int) -> torch.Tensor:
    """``(heads, len(queries), keys)``: the bias of queries at positions ``queries`` over keys 0..keys-1."""
    center = (table.shape[1] - 1) // 2
    offsets = torch.arange(keys, device=table.device)[None, :] - queries[:, None] + center
    return table[:, offsets]
