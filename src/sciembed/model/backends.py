"""Loaders of encoders that are not PyTorch model folders, by backend name (``load(..., backend=...)``).

Each loader takes a folder and returns an :class:`~sciembed.model.protocol.Encoder` whose
``backend`` names its batch runner in :data:`sciembed.engine.backends.RUNNERS`. A new backend is a
loader here and a runner there.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .protocol import Encoder

TORCH_NAMES = ("torch", "pytorch")
# backend name -> "module:loader"; loader(folder) -> Encoder
LOADERS = MappingProxyType(
    {
        "onnx": "sciembed.model.onnx_backend:load_onnx",
        "openvino": "sciembed.model.openvino_backend:load_openvino",
    }
)


def backend_names() -> tuple[str, ...]:
    return (TORCH_NAMES[0], *LOADERS)


def split_backend(name_or_path: str | Path | None, backend: str) -> tuple[str, str | Path | None]:
    """``("onnx", "DIR")`` for ``"onnx:DIR"`` (the short spelling of ``--backend onnx -m DIR``);
    other names keep the given backend."""
    if isinstance(name_or_path, str):
        prefix, sep, rest = name_or_path.partition(":")
        if sep and prefix.lower() in LOADERS and rest:
            if backend not in TORCH_NAMES and backend != prefix.lower():
                raise ValueError(f"{name_or_path!r} names the {prefix} backend, but the backend is {backend!r}")
            return prefix.lower(), rest
    return backend, name_or_path


def load_exported(
    backend: str, name_or_path: str | Path | None, adapters: Mapping[str, Any] | None = None, verify: bool = True
) -> Encoder:
    """``load_model(name_or_path, backend=backend)`` for a backend other than torch (torch not imported)."""
    if adapters:
        raise ValueError(f"the {backend} backend's adapters are inside its files; export with them instead")
    if name_or_path is None:
        from .default_model import default_model_path

        name_or_path = default_model_path(verify)
    return load_with_backend(backend, name_or_path)


def load_with_backend(backend: str, folder: str | Path) -> Encoder:
    """The backend's encoder of an export folder; a model folder (or name) is exported once first."""
    if backend not in LOADERS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(backend_names())}")
    module, loader = LOADERS[backend].split(":")
    load = getattr(import_module(module), loader)
    try:
        return load(folder)
    except FileNotFoundError:
        if not _is_model(folder):
            raise
    from .export_cache import cached_export

    return load(cached_export(folder, backend))


def _is_model(source: str | Path) -> bool:
    """A model folder (sciembed's, or a Hugging Face encoder's) that an automatic export can start from."""
    from .bases import find_base
    from .default_model import DEFAULT_NAMES, SHIPPED_MODELS

    if isinstance(source, str) and (source.lower() in DEFAULT_NAMES + SHIPPED_MODELS or find_base(source)):
        return True
    path = Path(source).expanduser()
    return any((path / name).is_file() for name in ("sciembed.json", "config.json"))
