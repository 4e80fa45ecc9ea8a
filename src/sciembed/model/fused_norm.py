"""Residual add + LayerNorm as one GPU kernel for the packed inference forward.

Eagerly, each of BERT's 24 residual LayerNorms is two kernels (the add, then the norm) that each read
and write the whole ``(tokens, hidden)`` activation: on an H200 they were 30 % of the default path's
kernel time (docs/PERFORMANCE.md). One Triton kernel reads ``x`` and ``residual`` once and writes the
normalised sum once, in fp32 arithmetic like PyTorch's own LayerNorm. With ``extra`` it sums three
tensors: after a bottleneck adapter the block's output is ``ln(up + adapter_residual + input)``, and
summing inside the kernel saves the adapter's own add pass. Used only where it is exact to
fp16/bf16 rounding and cheap to start: CUDA inference with Triton installed, outside
``torch.compile`` (inductor fuses the same ops itself); everywhere else ``ln(x + residual)`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import nn

from .triton_build import lazy_kernel

_MAX_HIDDEN = 8192  # each row must fit in one block


def _define(triton, tl):
    @triton.jit
    def add_layer_norm_kernel(
        x_ptr, r_ptr, e_ptr, w_ptr, b_ptr, y_ptr, rows, n, eps,
        HAS_EXTRA: tl.constexpr, BLOCK: tl.constexpr, ROWS: tl.constexpr,
    ):  # fmt: skip
        first = tl.program_id(0).to(tl.int64) * ROWS
        lines = first + tl.arange(0, ROWS)
        cols = tl.arange(0, BLOCK)
        col_ok = cols < n
        mask = (lines < rows)[:, None] & col_ok[None, :]
        at = lines[:, None] * n + cols[None, :]
        h = tl.load(x_ptr + at, mask=mask, other=0.0).to(tl.float32)
        h += tl.load(r_ptr + at, mask=mask, other=0.0).to(tl.float32)
        if HAS_EXTRA:
            h += tl.load(e_ptr + at, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(h, axis=1) / n
        centred = tl.where(mask, h - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / n + eps)
        w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        y = centred * rstd[:, None] * w[None, :] + b[None, :]
        tl.store(y_ptr + at, y.to(y_ptr.dtype.element_ty), mask=mask)

    return add_layer_norm_kernel


_kernel = lazy_kernel(_define)  # (triton, kernel) on first use, None without Triton


def fused_norm_applies(
    x: torch.Tensor, residual: torch.Tensor, ln: nn.Module, extra: torch.Tensor | None = None
) -> bool:
    """Whether :func:`add_layer_norm` runs the fused kernel for these arguments."""
    return (
        (extra is None or (extra.shape == x.shape and extra.dtype == x.dtype and extra.is_contiguous()))
        and x.is_cuda
        and x.dtype in (torch.float16, torch.bfloat16)
        and x.dim() == 2
        and x.shape == residual.shape
        and x.dtype == residual.dtype
        and x.is_contiguous()
        and residual.is_contiguous()
        and x.shape[1] <= _MAX_HIDDEN
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and isinstance(ln, nn.LayerNorm)
        and ln.weight is not None
        and ln.bias is not None
        and tuple(ln.normalized_shape) == (x.shape[1],)
        and _kernel() is not None
    )


def add_layer_norm(
    x: torch.Tensor, residual: torch.Tensor, ln: nn.Module, extra: torch.Tensor | None = None
) -> torch.Tensor:
    """``ln(x + residual)``, or ``ln((x + extra) + residual)`` with ``extra``; one fused kernel on CUDA
    inference (see the module's docstring). The modules' order of additions is kept where they run."""
    if not fused_norm_applies(x, residual, ln, extra):
        return ln(x + residual) if extra is None else ln((x + extra) + residual)
    return launch_add_layer_norm(x, residual, ln, extra)


class NormLaunch(NamedTuple):
    """Rows per program and warps of :func:`launch_add_layer_norm`."""

    rows: int = 1
    num_warps: int = 4


# Hidden size -> launch settings measured fastest on an H200 (benchmarks/layernorm_probe.py,
# docs/PERFORMANCE.md "Attention and the last layer"): 384 wide (MiniLM) 39.6 / 52.1 us against 53.0 /
# 58.5 us per 65,536-token call (two / three terms). Other sizes: one row per program, 4 warps (8 above
# 2,048 columns); at 768 that already moves 4.1-4.3 TB/s, and no setting was faster.
NORM_LAUNCH: Mapping[int, NormLaunch] = MappingProxyType({384: NormLaunch(rows=4, num_warps=2)})


def launch_add_layer_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    ln: nn.LayerNorm,
    extra: torch.Tensor | None = None,
    launch: NormLaunch | None = None,
) -> torch.Tensor:
    """The kernel itself on contiguous ``(rows, hidden)`` tensors, without :func:`fused_norm_applies`'s
    checks (the tests run it through Triton's CPU interpreter); ``launch``: rows per program and
    warps (default: ``NORM_LAUNCH``'s entry for the hidden size)."""
    triton, kernel = _kernel()
    rows, n = x.shape
    out = torch.empty_like(x)
    if rows:
        block = triton.next_power_of_2(n)
        launch = launch or NORM_LAUNCH.get(n) or NormLaunch(1, 4 if block <= 2048 else 8)
        kernel[(triton.cdiv(rows, launch.rows),)](
            x,
            residual,
            x if extra is None else extra,  # not read without HAS_EXTRA
            ln.weight,
            ln.bias,
            out,
            rows,
            n,
            float(ln.eps),
            HAS_EXTRA=extra is not None,
            BLOCK=block,
            ROWS=launch.rows,
            num_warps=launch.num_warps,
        )
    return out
