"""Loaders of encoders that are not PyTorch model folders, by backend name (``load(..., backend=...)``).

Each loader takes a folder and returns an :class:`~sciembed.model.protocol.Encoder` whose
``backend`` names its batch runner in :data:`sciembed.engine.backends.RUNNERS`. A new backend is a
loader here and a runner there.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from types import MappingProxyType

from .protocol import Encoder

TORCH_NAMES = ("torch", "pytorch")
# backend name -> "module:loader"; loader(folder) -> Encoder
LOADERS = MappingProxyType({"onnx": "sciembed.model.onnx_backend:load_onnx"})


def backend_names() -> tuple[str, ...]:
    return (TORCH_NAMES[0], *LOADERS)


def load_with_backend(backend: str, folder: str | Path) -> Encoder:
    if backend not in LOADERS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(backend_names())}")
    module, loader = LOADERS[backend].split(":")
    return getattr(import_module(module), loader)(folder)
