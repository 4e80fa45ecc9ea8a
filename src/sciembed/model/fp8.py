"""FP8 (e4m3) matrix products for the packed forward on Hopper-class GPUs.

Each linear's weight is stored once in float8 e4m3 with one scale per output row; activations are
quantised per token (row) on the fly, and ``torch._scaled_mm`` multiplies them on the FP8 tensor
cores (twice the bf16 rate) with the scales, the bias and the output (in the activations' dtype) in
its epilogue. e4m3 keeps ~6 % relative precision at every magnitude within a row, so per-channel
outliers (which ruin int8) cost little. Attention, LayerNorm, the adapters and pooling stay in the
model's dtype. Measured on an H200 it is slower than the compiled fp16 forward and below the 0.999
cosine guard, so it is an option (``EncodeOptions(fp8=True)``), not the default (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layer_parts import attention_parts

FP8_MAX = 448.0  # largest finite float8 e4m3fn value
# cuBLASLt's FP8 kernels want every matrix dimension a multiple of 16.
_ALIGN = 16


def fp8_available(device: torch.device | str) -> bool:
    """Whether this torch build and GPU run FP8 matrix products (compute capability >= 8.9)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available() or not hasattr(torch, "_scaled_mm"):
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def quantize_rows(x: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (M, K) as float8 e4m3 with one float32 scale per row, zero-padded to ``rows`` rows."""
    amax = x.abs().amax(dim=1, keepdim=True).float()
    scale = amax.clamp(min=1e-8) / FP8_MAX
    quantized = (x.float() / scale).to(torch.float8_e4m3fn)
    if rows != x.shape[0]:
        pad = rows - x.shape[0]
        quantized = torch.cat([quantized, quantized.new_zeros((pad, x.shape[1]))])
        scale = torch.cat([scale, scale.new_ones((pad, 1))])
    return quantized, scale


@dataclass(frozen=True)
class Fp8Linear:
    """``x @ W.T + b`` with ``W`` in float8 e4m3 (``weight``: (N, K), ``scale``: (1, N) float32)."""

    weight: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None) -> Fp8Linear:
        if weight.shape[0] % _ALIGN or weight.shape[1] % _ALIGN:
            raise ValueError(f"FP8 needs weight dimensions that are multiples of {_ALIGN}, got {tuple(weight.shape)}")
        w = weight.detach().float()
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / FP8_MAX
        quantized = (w / scale).to(torch.float8_e4m3fn)
        return cls(quantized, scale.t().contiguous(), None if bias is None else bias.detach())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        rows = flat.shape[0]
        quantized, scale = quantize_rows(flat, -(-rows // _ALIGN) * _ALIGN)
        out = torch._scaled_mm(
            quantized, self.weight.t(), scale_a=scale, scale_b=self.scale, bias=self.bias, out_dtype=x.dtype
        )
        return out[:rows].reshape(*x.shape[:-1], out.shape[-1])


@dataclass(frozen=True)
class Fp8Layer:
    """One encoder layer's four matrix products (Q/K/V fused); None: that one stays in the model's dtype."""

    qkv: Fp8Linear | None
    attention_out: Fp8Linear | None
    intermediate: Fp8Linear | None
    output: Fp8Linear | None


FP8_PRODUCTS = ("qkv", "attention_out", "intermediate", "output")


def fp8_layer(layer: nn.Module, products: tuple[str, ...] = FP8_PRODUCTS) -> Fp8Layer:
    unknown = set(products) - set(FP8_PRODUCTS)
    if unknown:
        raise ValueError(f"unknown FP8 products {sorted(unknown)}; choose from {', '.join(FP8_PRODUCTS)}")
    parts = attention_parts(layer)
    linears = {
        "qkv": (
            torch.cat([parts.query.weight, parts.key.weight, parts.value.weight]),
            torch.cat([parts.query.bias, parts.key.bias, parts.value.bias]),
        ),
        "attention_out": (parts.dense.weight, parts.dense.bias),
        "intermediate": (layer.intermediate.dense.weight, layer.intermediate.dense.bias),
        "output": (layer.output.dense.weight, layer.output.dense.bias),
    }
    return Fp8Layer(**{name: Fp8Linear.of(*linears[name]) if name in products else None for name in FP8_PRODUCTS})


def fp8_layers(base: nn.Module, products: tuple[str, ...] = FP8_PRODUCTS) -> tuple[Fp8Layer, ...]:
    """The FP8 weights of every encoder layer of a BERT/RoBERTa/MPNet ``base`` (a copy: the base is
    unchanged); ``products``: which of each layer's matrix products run in FP8."""
    with torch.no_grad():
        return tuple(fp8_layer(layer, products) for layer in base.encoder.layer)
