"""MPNet self-attention through ``torch.nn.functional.scaled_dot_product_attention``.

transformers refuses SDPA for MPNet (its relative position bias is an additive term that the library's
SDPA path has no slot for), so MPNet bases load with eager attention: scores, bias, mask and softmax
materialised in full, several times the memory traffic of a fused kernel. :func:`use_sdpa_attention`
replaces the forward of every ``MPNetSelfAttention`` of a loaded base with one that passes the relative
position bias plus the padding mask to SDPA as one float ``attn_mask``, which the memory-efficient
kernel accepts (flash attention takes no mask), in training (with attention dropout) and inference.

Same function as eager (equal within float rounding, tests/model/test_mpnet_attention.py); calls that
need what SDPA cannot give (``output_attentions``, a ``head_mask``) and ONNX export / tracing (which
``sciembed.model.export`` wants in the eager form) take the original forward.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PATCHED = "_sciembed_sdpa_attention"
# what our forward reads of MPNetSelfAttention (the same from transformers 4.x to 5.x)
_LAYOUT = {"q", "k", "v", "o", "dropout", "num_attention_heads", "attention_head_size", "all_head_size"}


def is_mpnet(base: nn.Module) -> bool:
    return getattr(getattr(base, "config", None), "model_type", None) == "mpnet"


def attention_bias(
    attention_mask: torch.Tensor | None, position_bias: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor | None:
    """One additive float mask from MPNet's position bias and its (additive or boolean) padding mask."""
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # True: attend
        keep = attention_mask
        attention_mask = torch.zeros(keep.shape, dtype=torch.float32, device=keep.device)
        attention_mask = attention_mask.masked_fill(~keep, torch.finfo(torch.float32).min)
    if position_bias is None:
        total = attention_mask
    elif attention_mask is None:
        total = position_bias
    else:
        total = position_bias + attention_mask
    return None if total is None else total.to(dtype)


def _sdpa_forward(module: nn.Module, *args: Any, **kwargs: Any):
    original, signature = getattr(module, PATCHED)
    arguments = signature.bind(module, *args, **kwargs).arguments
    extra = arguments.get("kwargs") or {}
    output_attentions = arguments.get("output_attentions", extra.get("output_attentions", False))
    head_mask = arguments.get("head_mask", extra.get("head_mask"))
    if output_attentions or head_mask is not None or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return original(*args, **kwargs)
    hidden = arguments["hidden_states"]
    batch, length, _ = hidden.shape
    shape = (batch, length, module.num_attention_heads, module.attention_head_size)
    q = module.q(hidden).view(shape).transpose(1, 2)
    k = module.k(hidden).view(shape).transpose(1, 2)
    v = module.v(hidden).view(shape).transpose(1, 2)
    mask = attention_bias(arguments.get("attention_mask"), arguments.get("position_bias"), q.dtype)
    context = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=module.dropout.p if module.training else 0.0
    )
    context = context.transpose(1, 2).reshape(batch, length, module.all_head_size)
    return (module.o(context),)


def use_sdpa_attention(base: nn.Module) -> int:
    """Route every MPNet self-attention of ``base`` through SDPA (idempotent); returns how many modules
    were patched (0 for other architectures)."""
    if not is_mpnet(base):
        return 0
    count = 0
    for module in base.modules():
        if type(module).__name__ != "MPNetSelfAttention" or hasattr(module, PATCHED):
            continue
        signature = inspect.signature(type(module).forward)
        if not _LAYOUT <= set(vars(module)) | set(module._modules) or "hidden_states" not in signature.parameters:
            continue  # a transformers version whose module differs from the one we mirror: stays eager
        original = module.forward
        setattr(module, PATCHED, (original, signature))
        module.forward = types.MethodType(_sdpa_forward, module)
        count += 1
    return count


def use_eager_attention(base: nn.Module) -> int:
    """Undo :func:`use_sdpa_attention` (the benchmark's reference); returns how many modules were restored."""
    count = 0
    for module in base.modules():
        if hasattr(module, PATCHED):
            del module.forward
            delattr(module, PATCHED)
            count += 1
    return count
