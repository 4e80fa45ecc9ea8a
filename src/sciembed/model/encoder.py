"""The sciembed model: tokenizer + Hugging Face base + per-format adapters + pooling.

It computes (padded and packed forwards, adapters, pooling, placement, fingerprint); moving documents
through it (batching, tokenisation threads, device transfer) is :mod:`sciembed.engine`'s work.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .adapters import BottleneckConfig, LayerAdapters
from .config import SciEmbedConfig
from .delta import LowRankDelta
from .encoding import EngineEncode
from .formats import canonical_format
from .fp8 import FP8_PRODUCTS, Fp8Layer, fp8_layers
from .injection import AdapterRouter, encoder_layers, install_router
from .packed import Packed, packed_hidden, packed_pool, supports_packed
from .pooling import pool
from .text import HostPadded, TextMixin


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU, fp16 on GPUs: as fast as bf16 there, and its 3 more mantissa bits keep embeddings
    within cosine 0.999999 of fp32 (bf16: 0.99987), which leaves sciembed-lite scores unchanged
    (docs/PERFORMANCE.md). An fp16 overflow recomputes that call in bf16 (see :mod:`sciembed.engine`)."""
    if device.type == "cuda":
        return torch.float16
    return torch.float32


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "fp16": torch.float16,
        "float16": torch.float16,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
    }
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; known: {sorted(table)}")
    return table[dtype]


class SciEmbedModel(EngineEncode, TextMixin, nn.Module):
    """An encoder with optional adapters per task format. Build it with :func:`sciembed.load`."""

    def __init__(self, base: nn.Module, tokenizer: Any, config: SciEmbedConfig):
        super().__init__()
        self.base = base
        self.tokenizer = tokenizer
        self.config = config
        self.adapters = nn.ModuleDict()
        self.router = AdapterRouter(self.adapters)
        # The low-rank delta merged into the base weights (sciembed.model.delta), kept to ship or rescale it.
        self.delta: LowRankDelta | None = None
        self._fingerprint: tuple[Any, str] | None = None  # (weights and settings key, digest)
        # The packed layer stack, through torch.compile after compile_packed() (None: eager).
        self._compiled_hidden: Callable[..., torch.Tensor] | None = None
        self._fp8: tuple[Any, tuple[Fp8Layer, ...]] | None = None  # (weights key, FP8 weights)
        install_router(base, self.router)

    backend = "torch"  # the engine's batch runners for this model: sciembed.engine.backends.torch

    # ---- adapters -------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.base.config.hidden_size)

    @property
    def dimension(self) -> int:
        return self.hidden_size

    @property
    def name(self) -> str:
        return self.config.name or type(self.base).__name__

    @property
    def formats(self) -> list[str]:
        return list(self.adapters.keys())

    def add_adapter(self, format: str, config: BottleneckConfig | None = None) -> LayerAdapters:
        name = canonical_format(format)
        stack = LayerAdapters(self.hidden_size, len(encoder_layers(self.base)), config or BottleneckConfig())
        stack.to(device=self.device, dtype=self.dtype)
        self.adapters[name] = stack
        self.config.formats = self.formats
        return stack

    def adapter_for_format(self, format: str | None) -> str | None:
        """The adapter to use for a format: itself, or None when the model has no adapters."""
        if format is None or not len(self.adapters):
            return None
        name = canonical_format(format)
        if name not in self.adapters:
            raise ValueError(f"model has no {name!r} adapter; it has: {', '.join(self.formats)}")
        return name

    # ---- device and dtype -----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.base.parameters()).dtype

    def place(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> SciEmbedModel:
        """Move to ``device`` in ``dtype``. Without a dtype the model keeps its own on its own device
        (so ``place("cuda", "fp16")`` then ``encode(device="cuda")`` stays fp16), and takes the
        device's default (fp32 CPU, bf16 GPU) when it moves."""
        target = torch.device(device) if device is not None else self.device
        same_device = target.type == self.device.type and (target.index is None or target == self.device)
        wanted = parse_dtype(dtype) or (self.dtype if same_device else default_dtype(target))
        if target != self.device or wanted != self.dtype:
            known = self._fingerprint is not None and self._fingerprint[0] == self._weights_key()
            self.to(device=target, dtype=wanted)
            if known:  # moving is not a change of weights: the digest stays
                self._fingerprint = (self._weights_key(), self._fingerprint[1])
        return self

    def copy_as(self, dtype: str | torch.dtype) -> SciEmbedModel:
        """A separate copy of this model in ``dtype`` on its device (this one stays as it is)."""
        base = copy.deepcopy(self.base).to(dtype=parse_dtype(dtype))
        clone = SciEmbedModel(base, self.tokenizer, copy.deepcopy(self.config))
        clone.delta = self.delta
        for name, stack in self.adapters.items():
            clone.adapters[name] = copy.deepcopy(stack).to(dtype=parse_dtype(dtype))
        return clone.train(self.training)

    # ---- text -----------------------------------------------------------------------------------
    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad to the longest sequence of the batch (host tensors)."""
        return HostPadded.of(ids, self.pad_id)._asdict()

    # ---- forward --------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        format: str | None = None,
        normalize: bool | None = None,
    ) -> torch.Tensor:
        """Pooled embeddings for a padded batch, L2-normalised when ``normalize`` (default: as configured;
        training losses use the raw pooled output)."""
        with self.router.activated(self.adapter_for_format(format)):
            hidden = self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = pool(hidden, attention_mask, self.config.pooling)
        if self.config.normalize if normalize is None else normalize:
            pooled = nn.functional.normalize(pooled.float(), dim=-1).to(pooled.dtype)
        return pooled

    @property
    def supports_packed(self) -> bool:
        """Whether the base can run the unpadded forward (BERT/RoBERTa with absolute positions, MPNet)."""
        return supports_packed(self.base)

    @property
    def compiled(self) -> bool:
        """Whether the packed forward runs through ``torch.compile`` (see :meth:`compile_packed`)."""
        return self._compiled_hidden is not None

    def compile_packed(self, mode: str | None = None, backend: str = "inductor") -> SciEmbedModel:
        """Run the packed forward's layer stack through ``torch.compile`` (dynamic shapes), which fuses
        its elementwise work (bias and residual adds, LayerNorm, GELU) into fewer kernels. The first
        batches compile (~15 s for BERT-base on an H100), so it pays for large jobs. If compiling
        fails (no compiler or Triton), a warning says so and the eager forward runs."""
        self._compiled_hidden = torch.compile(packed_hidden, dynamic=True, mode=mode, backend=backend)
        return self

    def uncompile_packed(self) -> SciEmbedModel:
        """Undo :meth:`compile_packed`: the packed forward runs eagerly again."""
        self._compiled_hidden = None
        return self

    def fp8_layers(self, products: tuple[str, ...] = FP8_PRODUCTS) -> tuple[Fp8Layer, ...]:
        """The base's matrix products (all, or ``products`` of each layer) in FP8 for the packed
        forward (:mod:`sciembed.model.fp8`), made once and remade whenever a weight changes or moves."""
        key = (self._weights_key(), tuple(products))
        if self._fp8 is None or self._fp8[0] != key:
            self._fp8 = (key, fp8_layers(self.base, tuple(products)))
        return self._fp8[1]

    def _packed_hidden(
        self,
        packed: Packed,
        adapters: LayerAdapters | None,
        fp8: tuple[Fp8Layer, ...] | None = None,
        first_tokens: bool = False,
    ) -> torch.Tensor:
        if self._compiled_hidden is not None:
            try:
                return self._compiled_hidden(self.base, packed, adapters, fp8, first_tokens)
            except Exception as exc:  # noqa: BLE001  no compiler / Triton here: stay correct, run eager
                warnings.warn(
                    f"torch.compile of the packed forward failed ({type(exc).__name__}: {exc}); running it eagerly",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._compiled_hidden = None
        return packed_hidden(self.base, packed, adapters, fp8, first_tokens)

    def first_tokens_only(self, packed: Packed) -> bool:
        """Whether the packed forward runs its last layer for each document's first token only (the
        same vectors): CLS pooling on the GPU. Not on the CPU, where products of so few rows round
        differently with the thread count, and a resumed job must write the same file whatever its
        threads (docs/PERFORMANCE.md, "Attention and the last layer", "On the CPU")."""
        return self.config.pooling == "cls" and packed.input_ids.is_cuda

    def forward_packed(
        self,
        packed: Packed,
        format: str | None = None,
        normalize: bool | None = None,
        fp8: tuple[Fp8Layer, ...] | None = None,
    ) -> torch.Tensor:
        """Embeddings of a :class:`~sciembed.model.packed.Packed` batch: the same function as
        :meth:`forward` on the padded batch, computed on real tokens only (``fp8``: with the matrix
        products of :meth:`fp8_layers`)."""
        name = self.adapter_for_format(format)
        adapters = self.adapters[name] if name is not None else None
        if self.first_tokens_only(packed):
            pooled = self._packed_hidden(packed, adapters, fp8, first_tokens=True)
        else:
            pooled = packed_pool(self._packed_hidden(packed, adapters, fp8), packed, self.config.pooling)
        if self.config.normalize if normalize is None else normalize:
            pooled = nn.functional.normalize(pooled.float(), dim=-1).to(pooled.dtype)
        return pooled

    # ---- identity -------------------------------------------------------------------------------
    def _weights_key(self) -> tuple[Any, ...]:
        """Changes whenever a weight, buffer or setting could have: tensor names, storage and in-place
        version counters (optimiser steps and ``load_state_dict`` bump them), and the settings."""
        settings = self.config.to_dict()
        settings.pop("base_sha256", None)
        settings.pop("name", None)
        settings.pop("delta", None)  # a merged delta is in the weights themselves
        tensors = tuple((name, t.data_ptr(), t._version) for name, t in self.state_dict(keep_vars=True).items())
        return (repr(sorted(settings.items())), tensors)

    @property
    def fingerprint(self) -> str:
        """sha256 over all weights and the embedding settings: changes whenever embeddings could.

        Cached until the weights or settings change (see :meth:`_weights_key`); moving the model to
        another device or dtype keeps it.
        """
        key = self._weights_key()
        if self._fingerprint is None or self._fingerprint[0] != key:
            digest = hashlib.sha256()
            digest.update(key[0].encode())
            for name, tensor in sorted(self.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = (key, digest.hexdigest())
        return self._fingerprint[1]
