"""Where the parts of one encoder layer live in the module trees of the bases the packed forward runs.

BERT and RoBERTa keep the attention's output projection, dropout and residual LayerNorm in
``attention.output``; MPNet keeps the projection (``o``) in its self-attention and the dropout and
LayerNorm in ``attention`` itself. Both have the same feed-forward blocks (``intermediate``,
``output``), which the adapters patch.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn


class AttentionParts(NamedTuple):
    core: nn.Module  # the self-attention: num_attention_heads, attention_head_size, dropout (on probabilities)
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    dense: nn.Linear  # the output projection
    dropout: nn.Module  # after the output projection
    norm: nn.LayerNorm  # the residual LayerNorm


def attention_parts(layer: nn.Module) -> AttentionParts:
    attention = layer.attention
    core = getattr(attention, "attn", None)
    if core is not None and hasattr(core, "o"):  # MPNet
        return AttentionParts(core, core.q, core.k, core.v, core.o, attention.dropout, attention.LayerNorm)
    core, output = attention.self, attention.output
    return AttentionParts(core, core.query, core.key, core.value, output.dense, output.dropout, output.LayerNorm)


def has_attention_parts(layer: nn.Module) -> bool:
    """Whether :func:`attention_parts` finds every part of ``layer``."""
    try:
        parts = attention_parts(layer)
    except AttributeError:
        return False
    return all(hasattr(parts.core, name) for name in ("num_attention_heads", "attention_head_size", "dropout"))
