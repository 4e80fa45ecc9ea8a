"""Bidirectional attention within each packed document as one Triton kernel (CUDA inference).

FlashAttention-2's variable-length kernel tiles every document into 128-row query blocks; a
275-token abstract then fills 3 blocks of which the last is mostly padding, and for narrow heads
its tiles use the tensor cores poorly. This kernel takes the tiles it is given, one program per
(query block, document, head), with the usual online softmax in fp32 and the probabilities rounded
to the input dtype for the second product (as FlashAttention does); other query rows than the
document's own tokens may be given (one query per document: CLS pooling's last layer), and an additive
bias per head and relative position (key position - query position: MPNet's relative position
bias, which FlashAttention has no slot for) may be added to the scores. Measured on
an H200 (``benchmarks/attention_probe.py``, docs/PERFORMANCE.md "Attention and the last layer") it
wins for heads of 32 and for one query per document, and loses for heads of 64, so
``sciembed.model.packed`` uses it only there, and for every MPNet base (with its bias): CUDA
inference in fp16/bf16 without dropout, outside ``torch.compile``."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .triton_build import lazy_kernel


class TileConfig(NamedTuple):
    """Tile sizes and launch settings of :func:`launch_varlen_attention`."""

    block_m: int = 64
    block_n: int = 64
    num_warps: int = 4
    num_stages: int = 2

    @classmethod
    def from_spec(cls, spec: str) -> TileConfig:
        """``"64x32w4s2"``: 64 x 32 tiles, 4 warps, 2 stages (the benchmarks' notation)."""
        m, rest = spec.split("x")
        n, rest = rest.split("w")
        warps, stages = rest.split("s")
        return cls(int(m), int(n), int(warps), int(stages))


def _define(triton, tl):
    @triton.jit
    def varlen_attention_kernel(
        q_ptr, k_ptr, v_ptr, o_ptr, cu_q_ptr, cu_k_ptr, bias_ptr, scale,
        stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh, stride_bh, bias_center,
        HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, KEY_BLOCKS: tl.constexpr,
        HAS_BIAS: tl.constexpr,
    ):  # fmt: skip
        block = tl.program_id(0)
        doc = tl.program_id(1)
        head = tl.program_id(2).to(tl.int64)
        q_start = tl.load(cu_q_ptr + doc).to(tl.int64)
        queries = (tl.load(cu_q_ptr + doc + 1) - q_start).to(tl.int32)
        if block * BLOCK_M >= queries:
            return
        start = tl.load(cu_k_ptr + doc).to(tl.int64)
        length = (tl.load(cu_k_ptr + doc + 1) - start).to(tl.int32)
        rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, HEAD_DIM)
        row_ok = rows < queries
        q = tl.load(
            q_ptr + (q_start + rows)[:, None] * stride_qt + head * stride_qh + dims[None, :],
            mask=row_ok[:, None],
            other=0.0,
        )
        best = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        total = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM), tl.float32)
        qk_scale = scale * 1.4426950408889634  # exp(x) = exp2(x log2 e)
        # the key blocks of the batch's longest document, skipping those past this one's end (a
        # compile-time count: a few variants, as 512 tokens are at most 8 blocks of 64)
        for key_block in range(0, KEY_BLOCKS):
            first = key_block * BLOCK_N
            if first < length:
                cols = first + tl.arange(0, BLOCK_N)
                col_ok = cols < length
                k = tl.load(
                    k_ptr + (start + cols)[:, None] * stride_kt + head * stride_kh + dims[None, :],
                    mask=col_ok[:, None],
                    other=0.0,
                )
                s = tl.dot(q, tl.trans(k)) * qk_scale
                if HAS_BIAS:  # bias[head, key - query + center]; a query row's position in its document is its row
                    offsets = cols[None, :] - rows[:, None] + bias_center
                    both_ok = row_ok[:, None] & col_ok[None, :]
                    b = tl.load(bias_ptr + head * stride_bh + offsets, mask=both_ok, other=0.0)
                    s += b.to(tl.float32) * 1.4426950408889634
                s = tl.where(col_ok[None, :], s, float("-inf"))
                new_best = tl.maximum(best, tl.max(s, 1))
                p = tl.math.exp2(s - new_best[:, None])
                alpha = tl.math.exp2(best - new_best)
                total = total * alpha + tl.sum(p, 1)
                v = tl.load(
                    v_ptr + (start + cols)[:, None] * stride_vt + head * stride_vh + dims[None, :],
                    mask=col_ok[:, None],
                    other=0.0,
                )
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
                best = new_best
        out = acc / total[:, None]
        tl.store(
            o_ptr + (q_start + rows)[:, None] * stride_ot + head * stride_oh + dims[None, :],
            out.to(o_ptr.dtype.element_ty),
            mask=row_ok[:, None],
        )

    return varlen_attention_kernel


_kernel = lazy_kernel(_define)  # (triton, kernel) on first use, None without Triton


def triton_attention_applies(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> bool:
    """Whether :func:`launch_varlen_attention` may run for these arguments on this machine."""
    size = q.shape[-1]
    return (
        q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
        and q.dtype == k.dtype == v.dtype
        and dropout_p == 0.0
        and not torch.is_grad_enabled()  # no backward kernel: training keeps FlashAttention-2 / SDPA
        and q.dim() == 3
        and size in (16, 32, 64, 128)
        and all(x.stride(-1) == 1 for x in (q, k, v))
        and not torch.compiler.is_compiling()
        and _kernel() is not None
    )


def launch_varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_len: int,
    tiles: TileConfig = TileConfig(),
    cu_queries: torch.Tensor | None = None,
    max_queries: int | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention of each document's tokens over its own tokens; ``q, k, v``: (T, heads, head_dim)
    views (any token and head strides), ``cu_seqlens``: (B + 1,) int32. Returns (T, heads, head_dim).
    ``cu_queries`` / ``max_queries``: other query rows per document than its tokens (e.g. its first
    token only: ``q`` is then (B, heads, head_dim) and ``cu_queries`` 0, 1, ..., B; the query rows are
    then the documents' first positions). ``bias``: (heads, 2 * max_len - 1) added to the score of the
    query at position i and the key at position j of a document as ``bias[:, j - i + max_len - 1]``."""
    triton, kernel = _kernel()
    cu_q = cu_seqlens if cu_queries is None else cu_queries
    longest_q = max_len if max_queries is None else max_queries
    rows, heads, size = q.shape
    out = torch.empty((rows, heads, size), dtype=q.dtype, device=q.device)
    batch = cu_seqlens.shape[0] - 1
    if bias is not None and not (
        bias.dim() == 2 and bias.shape[0] == heads and bias.shape[1] >= 2 * max_len - 1 and bias.shape[1] % 2
    ):
        raise ValueError(f"bias must be (heads, an odd >= 2 * max_len - 1), not {tuple(bias.shape)} ({max_len=})")
    bias = None if bias is None else bias.contiguous()
    if rows and batch:
        grid = (triton.cdiv(longest_q, tiles.block_m), batch, heads)
        kernel[grid](
            q, k, v, out, cu_q, cu_seqlens, q if bias is None else bias, 1.0 / math.sqrt(size),
            q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
            0 if bias is None else bias.stride(0), 0 if bias is None else (bias.shape[1] - 1) // 2,
            HEAD_DIM=size, BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, KEY_BLOCKS=triton.cdiv(max_len, tiles.block_n),
            HAS_BIAS=bias is not None, num_warps=tiles.num_warps, num_stages=tiles.num_stages,
        )  # fmt: skip
    return out
