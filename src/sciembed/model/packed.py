"""Unpadded ("packed") forward of BERT-, RoBERTa- and MPNet-family encoders.

The documents of a batch are laid end to end in one ``(total_tokens, hidden)`` tensor: embeddings,
projections, feed-forward blocks and adapters then run on real tokens only, and attention runs per
document through FlashAttention's variable-length kernel (``torch.nn.attention.varlen``) on CUDA in
bf16/fp16, or sciembed's Triton kernel (heads of 32, one query per document, and MPNet, whose relative
position bias FlashAttention cannot add). Elsewhere (CPU, fp32, attention dropout in training)
attention falls back to SDPA on per-document padded blocks, which computes the same function; the
unit tests compare both with the plain Hugging Face forward.

The per-layer modules of the base (and so the adapter router patched into each ``output`` block)
are called as they are: only the attention core and the mask handling are replaced, so weights,
adapters and the state dict are shared with the plain path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from itertools import chain
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .adapters import LayerAdapters
from .fp8 import Fp8Layer
from .fused_norm import add_layer_norm
from .injection import output_block
from .layer_parts import AttentionParts, attention_parts, has_attention_parts
from .relative_bias import bias_blocks, has_relative_bias, relative_bias_table
from .triton_attention import TileConfig, launch_varlen_attention, triton_attention_applies

SUPPORTED_BASES = ("BertModel", "RobertaModel", "XLMRobertaModel", "MPNetModel")

# Head size -> the Triton attention kernel's tiles where it beat FlashAttention-2 on an H200
# (benchmarks/attention_probe.py, docs/PERFORMANCE.md "Attention and the last layer"): heads of 32
# (MiniLM) 12.3 against 15.2 us per document; heads of 64 (BERT-base) stay with FlashAttention-2
# (18.9 us, the best tiles 20.3), except under MPNet's relative position bias, which FlashAttention has no
# slot for (BIAS_TILES: the best 64-wide tiles of that probe).
ATTENTION_TILES: Mapping[int, TileConfig] = MappingProxyType({32: TileConfig(block_m=64, block_n=32)})
# One query per document (CLS pooling's last layer): 0.32 / 0.50 against 0.63 us per document.
FIRST_TOKEN_TILES: Mapping[int, TileConfig] = MappingProxyType(
    {size: TileConfig(block_m=16, block_n=32) for size in (32, 64)}
)
BIAS_TILES = TileConfig(block_m=64, block_n=64)

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
    """Whether ``base`` is an encoder this module can run unpadded (BERT / RoBERTa with absolute
    positions, MPNet with its relative position bias)."""
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
    needed = ("word_embeddings", "position_embeddings", "LayerNorm", "dropout")
    needed += () if has_relative_bias(base) else ("token_type_embeddings",)
    if embeddings is None or not all(hasattr(embeddings, name) for name in needed):
        return False
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return False
    return all(has_attention_parts(layer) for layer in layers)


def trains_packed(base: nn.Module) -> bool:
    """Whether training should take the packed forward (on CUDA): every base it supports except MPNet.
    With a relative position bias, attention in training (no Triton backward) runs as SDPA on padded
    per-document blocks with a float mask, and stage 2's length buckets over the padded Hugging Face
    forward were faster: 1,405-1,479 against 1,336-1,374 documents/s forward + backward on an H200
    (``benchmarks/packed_train_probe.py``, docs/PERFORMANCE.md "MPNet packed")."""
    return supports_packed(base) and not has_relative_bias(base)


def position_offset(base: nn.Module) -> int:
    """RoBERTa and MPNet number positions from ``padding_idx + 1``; BERT from 0."""
    if "Roberta" in type(base).__name__ or "MPNet" in type(base).__name__:
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
def _padded_blocks(x: torch.Tensor, packed: Packed) -> torch.Tensor:
    """(T, heads, size) -> per-document padded blocks (B, heads, max_len, size)."""
    shape = (packed.batch, packed.max_len, x.shape[1], x.shape[2])
    return x.new_zeros(shape).index_put((packed.segments, packed.local), x).transpose(1, 2)


def _key_mask(packed: Packed, device: torch.device) -> torch.Tensor:
    lengths = (packed.cu_seqlens[1:] - packed.cu_seqlens[:-1]).long()
    keep = torch.arange(packed.max_len, device=device)[None, :] < lengths[:, None]
    return keep[:, None, None, :]


def _padded_mask(packed: Packed, q: torch.Tensor, bias: torch.Tensor | None, queries: torch.Tensor | None):
    """SDPA's mask for padded blocks: the key mask, or with a relative position ``bias`` table the bias
    of ``queries`` (positions; None: 0..max_len-1) with -inf on padded keys."""
    keep = _key_mask(packed, q.device)
    if bias is None:
        return keep
    positions = torch.arange(packed.max_len, device=q.device) if queries is None else queries
    blocks = bias_blocks(bias, positions, packed.max_len).to(q.dtype)[None]  # (1, H, Lq, L)
    return torch.where(keep, blocks, blocks.new_full((), float("-inf")))  # (B, H, Lq, L)


def _padded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    packed: Packed,
    dropout_p: float,
    bias: torch.Tensor | None = None,
):
    """Reference: per-document padded blocks through SDPA with a key mask (any device and dtype)."""
    blocks = (_padded_blocks(x, packed) for x in (q, k, v))
    with no_cudnn_attention(q.is_cuda):
        mask = _padded_mask(packed, q, bias, None)
        out = F.scaled_dot_product_attention(*blocks, attn_mask=mask, dropout_p=dropout_p)
    return out.transpose(1, 2)[(packed.segments, packed.local)]  # (T, H, D)


def _flash_applies(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> bool:
    return (
        _varlen_attn is not None
        and q.is_cuda
        and q.dtype in (torch.bfloat16, torch.float16)
        and q.dtype == k.dtype == v.dtype
        and dropout_p == 0.0
    )


def packed_attention(
    q: Tensor, k: Tensor, v: Tensor, packed: Packed, dropout_p: float = 0.0, bias: Tensor | None = None
):
    """Bidirectional attention within each document; ``q, k, v``: (T, heads, head_dim); ``bias``: a
    relative position bias table (:func:`~sciembed.model.relative_bias.relative_bias_table`). On CUDA
    inference sciembed's Triton kernel where it was measured faster than FlashAttention-2
    (:mod:`sciembed.model.triton_attention`) or a bias is given, else FlashAttention-2's
    variable-length kernel; elsewhere SDPA on padded blocks."""
    tiles = BIAS_TILES if bias is not None else ATTENTION_TILES.get(q.shape[-1])
    if tiles is not None and triton_attention_applies(q, k, v, dropout_p):
        return launch_varlen_attention(q, k, v, packed.cu_seqlens, packed.max_len, tiles, bias=bias)
    if bias is None and _flash_applies(q, k, v, dropout_p):
        return _varlen_attn(q, k, v, packed.cu_seqlens, packed.cu_seqlens, packed.max_len, packed.max_len)
    return _padded_attention(q, k, v, packed, dropout_p, bias)


def first_token_attention(
    q: Tensor, k: Tensor, v: Tensor, packed: Packed, dropout_p: float = 0.0, bias: Tensor | None = None
) -> torch.Tensor:
    """Attention of each document's first token over its document; ``q``: (B, heads, head_dim), one
    query per document; ``k, v``: (T, heads, head_dim); ``bias`` as for :func:`packed_attention`.
    Returns (B, heads, head_dim)."""
    tiles = FIRST_TOKEN_TILES.get(q.shape[-1], BIAS_TILES if bias is not None else None)
    triton = tiles is not None and triton_attention_applies(q, k, v, dropout_p)
    if triton or (bias is None and _flash_applies(q, k, v, dropout_p)):
        one_each = torch.arange(packed.batch + 1, dtype=torch.int32, device=q.device)  # query offsets
        if triton:
            return launch_varlen_attention(q, k, v, packed.cu_seqlens, packed.max_len, tiles, one_each, 1, bias)
        return _varlen_attn(q, k, v, one_each, packed.cu_seqlens, 1, packed.max_len)
    blocks = (_padded_blocks(x, packed) for x in (k, v))
    with no_cudnn_attention(q.is_cuda):
        mask = _padded_mask(packed, q, bias, torch.zeros(1, dtype=torch.long, device=q.device))
        out = F.scaled_dot_product_attention(q[:, :, None, :], *blocks, attn_mask=mask, dropout_p=dropout_p)
    return out[:, :, 0, :]


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


def _self_attention(
    parts: AttentionParts,
    hidden: torch.Tensor,
    packed: Packed,
    fp8: Fp8Layer | None,
    first_tokens: bool,
    position_bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(context, residual): every token's attention output and input, or with ``first_tokens`` only
    those of each document's first token (keys and values still come from all its tokens)."""
    core = parts.core
    heads, size = core.num_attention_heads, core.attention_head_size
    dropout_p = float(core.dropout.p) if core.training else 0.0
    starts = packed.cu_seqlens[:-1].long() if first_tokens else None
    if first_tokens and (fp8 is None or fp8.qkv is None):
        weight = torch.cat([parts.key.weight, parts.value.weight])
        bias = torch.cat([parts.key.bias, parts.value.bias])
        k, v = F.linear(hidden, weight, bias).view(-1, 2, heads, size).unbind(1)
        hidden = hidden.index_select(0, starts)
        q = parts.query(hidden).view(-1, heads, size)
        context = first_token_attention(q, k, v, packed, dropout_p, position_bias)
        return context.reshape(-1, heads * size), hidden
    if fp8 is None or fp8.qkv is None:
        weight = torch.cat([parts.query.weight, parts.key.weight, parts.value.weight])
        bias = torch.cat([parts.query.bias, parts.key.bias, parts.value.bias])
        qkv = F.linear(hidden, weight, bias)
    else:
        qkv = fp8.qkv(hidden)
    q, k, v = qkv.view(-1, 3, heads, size).unbind(1)
    if first_tokens:  # FP8: one product for q, k and v, then the first tokens' queries
        context = first_token_attention(q.index_select(0, starts), k, v, packed, dropout_p, position_bias)
        return context.reshape(-1, heads * size), hidden.index_select(0, starts)
    return packed_attention(q, k, v, packed, dropout_p, position_bias).reshape(-1, heads * size), hidden


def _layer_forward(
    layer: nn.Module,
    hidden: torch.Tensor,
    packed: Packed,
    adapter: nn.Module | None,
    fp8: Fp8Layer | None = None,
    first_tokens: bool = False,
    position_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    block = attention_parts(layer)  # projections, then the output projection, dropout, residual LayerNorm
    context, hidden = _self_attention(block, hidden, packed, fp8, first_tokens, position_bias)
    if fp8 is None:
        hidden = add_layer_norm(block.dropout(block.dense(context)), hidden, block.norm)
        intermediate = intermediate_forward(layer.intermediate, hidden)
    else:  # the same blocks with the FP8 matrix products
        hidden = block.norm(block.dropout((fp8.attention_out or block.dense)(context)) + hidden)
        intermediate = layer.intermediate.intermediate_act_fn((fp8.intermediate or layer.intermediate.dense)(hidden))
    # FFN, the adapter, residual LayerNorm: the same block as the padded path's patched output forward
    return output_block(
        layer.output, intermediate, hidden, adapter, dense=None if fp8 is None else fp8.output, add_norm=add_layer_norm
    )


def packed_hidden(
    base: nn.Module,
    packed: Packed,
    adapters: LayerAdapters | None = None,
    fp8: Sequence[Fp8Layer] | None = None,
    first_tokens: bool = False,
) -> torch.Tensor:
    """Last hidden states ``(T, hidden)`` of the packed documents through ``adapters`` (None: the base).

    The adapters are an argument, not the router's state, so concurrent calls with different formats
    do not interfere and ``torch.compile`` guards on them. ``fp8``: the layers' FP8 weights
    (:func:`sciembed.model.fp8.fp8_layers`) to run the matrix products in FP8.

    ``first_tokens``: only each document's first token's last hidden state, ``(B, hidden)`` (what CLS
    pooling reads). The last layer then needs keys and values of every token but its query,
    attention output, feed-forward block and adapter for one token per document: about a twelfth
    less work for a 12-layer encoder, the same function.
    """
    embeddings = base.embeddings
    positions = packed.local + position_offset(base) if position_offset(base) else packed.local
    hidden = embeddings.word_embeddings(packed.input_ids) + embeddings.position_embeddings(positions)
    if hasattr(embeddings, "token_type_embeddings"):  # not MPNet
        hidden = hidden + embeddings.token_type_embeddings.weight[0]
    hidden = embeddings.dropout(embeddings.LayerNorm(hidden))
    position_bias = relative_bias_table(base, packed.max_len, hidden.device)  # MPNet; shared by the layers
    last = len(base.encoder.layer) - 1
    for index, layer in enumerate(base.encoder.layer):
        adapter = adapters.for_layer(index) if adapters is not None else None
        layer_fp8 = None if fp8 is None else fp8[index]
        first = first_tokens and index == last
        hidden = _layer_forward(layer, hidden, packed, adapter, layer_fp8, first, position_bias)
    return hidden


def document_sums(hidden: torch.Tensor, packed: Packed, padded: bool) -> torch.Tensor:
    """Per-document fp32 sums of the token rows. ``padded`` (taken on CUDA): a sum over per-document
    padded rows, one fixed order; CUDA's ``index_add_`` adds with atomics, in an order (and so to
    bits) that vary from run to run. Without it, ``index_add_``: sequential on the CPU, the same bits
    whatever the thread count."""
    if padded:
        shape = (packed.batch, packed.max_len, hidden.shape[-1])
        rows = hidden.new_zeros(shape, dtype=torch.float32).index_put((packed.segments, packed.local), hidden.float())
        return rows.sum(dim=1)
    sums = hidden.new_zeros((packed.batch, hidden.shape[-1]), dtype=torch.float32)
    return sums.index_add_(0, packed.segments, hidden.float())


def packed_pool(hidden: torch.Tensor, packed: Packed, mode: str) -> torch.Tensor:
    """``cls``: each document's first token; ``mean``: the mean over its tokens."""
    if mode == "cls":
        return hidden.index_select(0, packed.cu_seqlens[:-1].long())
    if mode == "mean":
        sums = document_sums(hidden, packed, padded=hidden.is_cuda)
        counts = (packed.cu_seqlens[1:] - packed.cu_seqlens[:-1]).clamp(min=1).to(torch.float32)
        return (sums / counts[:, None]).to(hidden.dtype)
    raise ValueError(f"unknown pooling {mode!r}")
