"""``load_model``'s front door: an exported backend is loaded without importing torch.

The PyTorch model (``backend="torch"``) is :func:`sciembed.model.folder.load_model`, imported only
when it is asked for; ``backend="onnx"`` / ``"openvino"`` go to :func:`.backends.load_exported`, whose
import chain holds no torch or transformers (seconds of start-up in a short CPU job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backends import TORCH_NAMES, load_exported, split_backend
from .protocol import Encoder


def load_model(
    name_or_path: str | Path | None = None,
    adapters: Mapping[str, str | Path] | None = None,
    device: Any = None,
    dtype: Any = None,
    attn_implementation: str | None = "sdpa",
    verify: bool = True,
    backend: str = "torch",
    registry: Sequence[Any] | None = None,
) -> Encoder:
    """Load a model folder or name (PyTorch), or an export with ``backend="onnx"|"openvino"``.

    The arguments are those of :func:`sciembed.model.folder.load_model` (its docstring has them all).
    """
    chosen, source = split_backend(name_or_path, backend)
    if chosen not in TORCH_NAMES:
        return load_exported(chosen, source, adapters, verify)
    from .folder import load_model as load_torch_model

    extra = {} if registry is None else {"registry": registry}  # None: the registry's default bases
    return load_torch_model(name_or_path, adapters, device, dtype, attn_implementation, verify, backend, **extra)
