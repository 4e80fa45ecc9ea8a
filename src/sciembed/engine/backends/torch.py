"""PyTorch backends: the padded Hugging Face forward and the unpadded (packed) forward."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np
import torch

from ...model.fp8 import fp8_available
from ...model.packed import pack_host
from ...model.relative_bias import has_relative_bias
from ...model.text import HostPadded
from ..options import EncodeOptions

# The GPU path forms batches by a token budget (batch size x longest length, padding included) over
# length-sorted inputs instead of a fixed number of documents.
DEFAULT_GPU_MAX_TOKENS = 16384
# The packed path pays no padding and no attention mask: larger batches keep the matrix units busy
# (65536 tokens of BERT-base: ~1 GB of activations in bf16).
DEFAULT_PACKED_MAX_TOKENS = 65536


# Compilation pays for itself from about this many documents (one H200; docs/PERFORMANCE.md, "Fused
# kernels, second round"): 12-20 s to compile (inductor's cache warm / cold) for +19 % docs/s on the
# shipped MiniLM-sized model (break-even 1.5-2.6M) and +0-6 % on BERT-base over the default that
# fuses its own kernels (break-even 1.1M and up), so only jobs this large compile unasked.
AUTO_COMPILE_MIN_DOCS = 2_000_000


def uses_packed(model, options: EncodeOptions) -> bool:
    """``options.packed``, or by default for a base the packed forward supports: on CUDA in
    fp16/bf16, and on the CPU for CLS pooling (SPECTER2's), where it ran +8-18 % faster than the
    padded forward on 2 cores; for mean pooling the two were within noise, so it stays padded
    there (docs/PERFORMANCE.md, "Attention and the last layer")."""
    if options.packed is not None:
        return bool(options.packed) and model.supports_packed
    if not model.supports_packed:
        return False
    if model.device.type == "cuda":
        return model.dtype in (torch.bfloat16, torch.float16)
    return model.device.type == "cpu" and model.config.pooling == "cls"


def auto_compile(model, options: EncodeOptions, documents: int) -> bool:
    """``options.compile``, or by default: for ``documents >= AUTO_COMPILE_MIN_DOCS`` on the packed
    CUDA forward with Triton installed (inductor's GPU code generator)."""
    if options.compile is not None:
        return bool(options.compile)
    if documents < AUTO_COMPILE_MIN_DOCS or not uses_packed(model, options):
        return False
    if has_relative_bias(model.base):  # MPNet: compiled, its attention would leave the Triton kernel for SDPA
        return False
    return importlib.util.find_spec("triton") is not None


class _TorchRunner:
    """Results stay on the device (one row copy per batch, no host synchronisation) until the end."""

    def __init__(self, model, adapter: str | None, default_max_tokens: int):
        self.model = model
        self.adapter = adapter
        self.device = model.device
        cuda = self.device.type == "cuda"
        self.pin = cuda  # host batches in pinned memory: asynchronous copies
        self.pipeline_default = cuda
        self.default_max_tokens = default_max_tokens if cuda else None
        self.out: torch.Tensor | None = None

    def begin(self, count: int) -> None:
        self.out = torch.zeros((count, self.model.dimension), dtype=torch.float32, device=self.device)

    def finish(self) -> np.ndarray:
        return self.out.cpu().numpy()


class PaddedRunner(_TorchRunner):
    def __init__(self, model, adapter: str | None):
        super().__init__(model, adapter, DEFAULT_GPU_MAX_TOKENS)

    def prepare(self, seqs: Sequence[np.ndarray], rows: Sequence[int]) -> tuple[HostPadded, torch.Tensor]:
        index = torch.tensor(rows, dtype=torch.int64)
        return HostPadded.of(seqs, self.model.pad_id, self.pin), index.pin_memory() if self.pin else index

    def run(self, batch: tuple[HostPadded, torch.Tensor]) -> int:
        host, index = batch
        tensors = host.to(self.device)
        vectors = self.model(tensors["input_ids"], tensors["attention_mask"], format=self.adapter)
        self.out.index_copy_(0, index.to(self.device, non_blocking=True), vectors.float())
        return len(index)


class PackedRunner(_TorchRunner):
    def __init__(self, model, adapter: str | None, fp8: bool = False):
        super().__init__(model, adapter, DEFAULT_PACKED_MAX_TOKENS)
        self.fp8 = model.fp8_layers() if fp8 else None

    def prepare(self, seqs: Sequence[np.ndarray], rows: Sequence[int]):
        return pack_host(seqs, rows, pin=self.pin)

    def run(self, batch) -> int:
        packed, index = batch.to(self.device)
        vectors = self.model.forward_packed(packed, format=self.adapter, fp8=self.fp8)
        self.out.index_copy_(0, index, vectors.float())
        return packed.batch


def runner(model, adapter: str | None, options: EncodeOptions) -> _TorchRunner:
    model.eval()
    if uses_packed(model, options):
        if options.compile and not model.compiled:
            model.compile_packed()
        return PackedRunner(model, adapter, fp8=options.fp8 and fp8_available(model.device))
    return PaddedRunner(model, adapter)
