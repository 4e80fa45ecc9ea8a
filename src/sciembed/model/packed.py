"""Unpadded ("packed") forward of BERT- and RoBERTa-family encoders.

The documents of a batch are laid end to end in one ``(total_tokens, hidden)`` tensor: embeddings,
projections, feed-forward blocks and adapters then run on real tokens only, and attention runs per
document through FlashAttention's variable-length kernel (``torch.nn.attention.varlen``) on CUDA in
bf16/fp16. Elsewhere (CPU, fp32, attention dropout in training) attention falls back to SDPA on
per-document padded blocks, which computes the same function; the unit tests compare both with the
plain Hugging Face forward.

The per-layer modules of the base (and so the adapter router patched into each ``output`` block)
are called as they are: only the attention core and the mask handling are replaced, so weights,
adapters and the state dict are shared with the plain path.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from itertools import chain
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .adapters import LayerAdapters
from .fp8 import Fp8Layer
from .fused_norm import add_layer_norm
from .injection import output_block

SUPPORTED_BASES = ("BertModel", "RobertaModel", "XLMRobertaModel")

try:  # torch >= 2.9
    from torch.nn.attention.varlen import varlen_attn as _varlen_attn
except ImportError:  # pragma: no cover - older torch: the padded fallback is used
    _varlen_attn = None


class Packed(NamedTuple):
    """A batch of documents laid end to end (all tensors on the model's device)."""

    input_ids: torch.Tensor  # (T,) token ids
    local: torch.Tensor  # (T,) position of each token inside its document (0-based)
    segments: torch.Tensor  # (T,) the document of each token
    cu_seqlens: torch.Tensor  # (B + 1,) int32 document starts, then T
    max_len: int  # longest document (a host number: no synchronisation)
    batch: int  # documents


def supports_packed(base: nn.Module) -> bool:
    """Whether ``base`` is an encoder this module can run unpadded (BERT / RoBERTa, absolute positions)."""
    if type(base).__name__ not in SUPPORTED_BASES:
        return False
    config = base.config
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return False
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return False
    if getattr(config, "chunk_size_feed_forward", 0):
        return False
    embeddings = getattr(base, "embeddings", None)
    needed = ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm")
    if embeddings is None or not all(hasattr(embeddings, name) for name in needed):
        return False
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return False
    attention = getattr(layers[0], "attention", None)
    return all(hasattr(getattr(attention, "self", None), n) for n in ("query", "key", "value")) and hasattr(
        attention, "output"
    )


def position_offset(base: nn.Module) -> int:
    """RoBERTa numbers positions from ``padding_idx + 1``; BERT from 0."""
    if "Roberta" in type(base).__name__:
        return int(base.embeddings.padding_idx) + 1
    return 0


class HostPacked(NamedTuple):
    """A packed batch on the host: one int64 buffer ``[ids | local positions | segments | cu_seqlens |
    index]`` (pinned when bound for a GPU); one copy moves it to the device, where :meth:`to` slices it."""

    buffer: torch.Tensor
    batch: int  # documents
    total: int  # tokens
    max_len: int  # longest document

    def to(self, device: torch.device | str) -> tuple[Packed, torch.Tensor]:
        """The batch on ``device`` and its index part (empty without an index)."""
        return unpack(self.buffer.to(device, non_blocking=True), self.batch, self.total, self.max_len)


def pack_host(seqs: Sequence[Sequence[int]], index: Sequence[int] | None = None, pin: bool = False) -> HostPacked:
    """Lay ``seqs`` end to end in one host buffer (plus ``index``, e.g. the output rows of the documents)."""
    batch = len(seqs)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=batch)
    total = int(lengths.sum())
    extra = batch if index is not None else 0
    buffer = np.empty(3 * total + batch + 1 + extra, dtype=np.int64)
    if batch and isinstance(seqs[0], np.ndarray):
        np.concatenate(seqs, out=buffer[:total], casting="unsafe")
    else:
        buffer[:total] = np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=total)
    cu = buffer[3 * total : 3 * total + batch + 1]
    cu[0] = 0
    np.cumsum(lengths, out=cu[1:])
    segments = np.repeat(np.arange(batch, dtype=np.int64), lengths)
    buffer[2 * total : 3 * total] = segments
    np.subtract(np.arange(total, dtype=np.int64), cu[:-1][segments], out=buffer[total : 2 * total])
    if index is not None:
        buffer[3 * total + batch + 1 :] = index
    tensor = torch.from_numpy(buffer)
    return HostPacked(tensor.pin_memory() if pin else tensor, batch, total, int(lengths.max()) if batch else 0)


def unpack(buffer: torch.Tensor, batch: int, total: int, max_len: int) -> tuple[Packed, torch.Tensor]:
    """Slice a (device) buffer from :func:`pack_host`; returns the batch and the index part (maybe empty)."""
    t = total
    packed = Packed(
        input_ids=buffer[:t],
        local=buffer[t : 2 * t],
        segments=buffer[2 * t : 3 * t],
        cu_seqlens=buffer[3 * t : 3 * t + batch + 1].to(torch.int32),
        max_len=max_len,
        batch=batch,
    )
    return packed, buffer[3 * t + batch + 1 :]


def pack(seqs: Sequence[Sequence[int]], device: torch.device | str = "cpu") -> Packed:
    """Pack token-id sequences straight onto ``device`` (pinned, asynchronous copy on CUDA)."""
    device = torch.device(device)
    return pack_host(seqs, pin=device.type == "cuda").to(device)[0]


def no_cudnn_attention(enabled: bool = True):
    """SDPA without the cuDNN backend: it builds an execution plan for every new (batch, length)
    shape (tens of ms each), which dominated training steps whose shapes rarely repeat."""
    if not enabled:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


# ---- attention ------------------------------------------------------------------------------------
def _padded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packed: Packed, dropout_p: float):
    """Reference: per-document padded blocks through SDPA with a key mask (any device and dtype)."""
    heads, size = q.shape[1], q.shape[2]
    shape = (packed.batch, packed.max_len, heads, size)
    where = (packed.segments, packed.local)

    def padded(x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(shape).index_put(where, x).transpose(1, 2)  # (B, H, L, D)

    lengths = (packed.cu_seqlens[1:] - packed.cu_seqlens[:-1]).long()
    keep = torch.arange(packed.max_len, device=q.device)[None, :] < lengths[:, None]
    with no_cudnn_attention(q.is_cuda):
        out = F.scaled_dot_product_attention(
            padded(q), padded(k), padded(v), attn_mask=keep[:, None, None, :], dropout_p=dropout_p
        )
    return out.transpose(1, 2)[where]  # (T, H, D)


def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, packed: Packed, dropout_p: float = 0.0):
    """Bidirectional attention within each document; ``q, k, v``: (T, heads, head_dim)."""
    flash = (
        _varlen_attn is not None
        and q.is_cuda
        and q.dtype in (torch.bfloat16, torch.float16)
        and q.dtype == k.dtype == v.dtype
        and dropout_p == 0.0
    )
    if flash:
        return _varlen_attn(q, k, v, packed.cu_seqlens, packed.cu_seqlens, packed.max_len, packed.max_len)
    return _padded_attention(q, k, v, packed, dropout_p)


# ---- the encoder ----------------------------------------------------------------------------------
def gelu_epilogue_applies(block: nn.Module, hidden: torch.Tensor) -> bool:
    """Whether ``block`` (an ``intermediate``: dense, then exact GELU) may run as one cuBLASLt GEMM
    with a bias + GELU epilogue: CUDA inference in half precision only (training keeps the modules,
    whose backward is the reference)."""
    return (
        hidden.is_cuda
        and hidden.dtype in (torch.float16, torch.bfloat16)
        and hidden.dim() == 2
        and not torch.is_grad_enabled()
        and getattr(block.dense, "bias", None) is not None
        and type(block.intermediate_act_fn).__name__ == "GELUActivation"
    )


def gelu_epilogue_forward(block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """``block(hidden)`` as one GEMM whose epilogue adds the bias and applies GELU (cuBLASLt on CUDA,
    which computes the tanh form: min cosine to fp32 0.999994 over the lite guard, docs/PERFORMANCE.md)."""
    return torch._addmm_activation(block.dense.bias, hidden, block.dense.weight.t(), use_gelu=True)


def intermediate_forward(block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The FFN's first half. On the GPU, GELU in the GEMM's epilogue saves a pass over the 3,072-wide
    activations: GPU kernel time -7 % eager, -15 % compiled on an H200 (docs/PERFORMANCE.md)."""
    if gelu_epilogue_applies(block, hidden):
        return gelu_epilogue_forward(block, hidden)
    return block(hidden)


def _layer_forward(
    layer: nn.Module, hidden: torch.Tensor, packed: Packed, adapter: nn.Module | None, fp8: Fp8Layer | None = None
) -> torch.Tensor:
    attention = layer.attention
    core = attention.self
    heads, size = core.num_attention_heads, core.attention_head_size
    if fp8 is None or fp8.qkv is None:
        weight = torch.cat([core.query.weight, core.key.weight, core.value.weight])
        bias = torch.cat([core.query.bias, core.key.bias, core.value.bias])
        qkv = F.linear(hidden, weight, bias)
    else:
        qkv = fp8.qkv(hidden)
    q, k, v = qkv.view(-1, 3, heads, size).unbind(1)
    dropout_p = float(core.dropout.p) if core.training else 0.0
    context = packed_attention(q, k, v, packed, dropout_p).reshape(-1, heads * size)
    if fp8 is None:
        block = attention.output  # dense, dropout, residual LayerNorm
        hidden = add_layer_norm(block.dropout(block.dense(context)), hidden, block.LayerNorm)
        intermediate = intermediate_forward(layer.intermediate, hidden)
    else:  # the same blocks with the FP8 matrix products
        block = attention.output
        hidden = block.LayerNorm(block.dropout((fp8.attention_out or block.dense)(context)) + hidden)
        intermediate = layer.intermediate.intermediate_act_fn((fp8.intermediate or layer.intermediate.dense)(hidden))
    # FFN, the adapter, residual LayerNorm: the same block as the padded path's patched output forward
    return output_block(
        layer.output, intermediate, hidden, adapter, dense=None if fp8 is None else fp8.output, add_norm=add_layer_norm
    )


def packed_hidden(
    base: nn.Module, packed: Packed, adapters: LayerAdapters | None = None, fp8: Sequence[Fp8Layer] | None = None
) -> torch.Tensor:
    """Last hidden states ``(T, hidden)`` of the packed documents through ``adapters`` (None: the base).

    The adapters are an argument, not the router's state, so concurrent calls with different formats
    do not interfere and ``torch.compile`` guards on them. ``fp8``: the layers' FP8 weights
    (:func:`sciembed.model.fp8.fp8_layers`) to run the matrix products in FP8.
    """
    embeddings = base.embeddings
    positions = packed.local + position_offset(base) if position_offset(base) else packed.local
    hidden = embeddings.word_embeddings(packed.input_ids) + embeddings.position_embeddings(positions)
    hidden = hidden + embeddings.token_type_embeddings.weight[0]
    hidden = embeddings.dropout(embeddings.LayerNorm(hidden))
    for index, layer in enumerate(base.encoder.layer):
        adapter = adapters.for_layer(index) if adapters is not None else None
        hidden = _layer_forward(layer, hidden, packed, adapter, None if fp8 is None else fp8[index])
    return hidden


def packed_pool(hidden: torch.Tensor, packed: Packed, mode: str) -> torch.Tensor:
    """``cls``: each document's first token; ``mean``: the mean over its tokens."""
    if mode == "cls":
        return hidden.index_select(0, packed.cu_seqlens[:-1].long())
    if mode == "mean":
        sums = hidden.new_zeros((packed.batch, hidden.shape[-1]), dtype=torch.float32)
        sums.index_add_(0, packed.segments, hidden.float())
        counts = (packed.cu_seqlens[1:] - packed.cu_seqlens[:-1]).clamp(min=1).to(torch.float32)
        return (sums / counts[:, None]).to(hidden.dtype)
    raise ValueError(f"unknown pooling {mode!r}")
