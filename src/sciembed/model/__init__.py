"""The encoder: Hugging Face base, pooling, bottleneck adapters per task format, model folders.

Names are imported on first use (PEP 562): the exported (ONNX / OpenVINO) path reaches
:func:`load_model` without importing torch and transformers, which alone cost seconds of a CPU job.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .loading import load_model

# public name -> the submodule that defines it
_LAZY = {
    "length_sorted_batches": "..engine.batching",  # kept here for older imports
    "BottleneckAdapter": ".adapters",
    "BottleneckConfig": ".adapters",
    "LayerAdapters": ".adapters",
    "SciEmbedConfig": ".config",
    "SciEmbedModel": ".encoder",
    "default_device": ".encoder",
    "default_dtype": ".encoder",
    "parse_dtype": ".encoder",
    "load_adapter": ".folder",
    "save_model": ".folder",
    "FORMAT_ALIASES": ".formats",
    "FORMATS": ".formats",
    "canonical_format": ".formats",
    "Encoder": ".protocol",
}

if TYPE_CHECKING:
    from ..engine.batching import length_sorted_batches
    from .adapters import BottleneckAdapter, BottleneckConfig, LayerAdapters
    from .config import SciEmbedConfig
    from .encoder import SciEmbedModel, default_device, default_dtype, parse_dtype
    from .folder import load_adapter, save_model
    from .formats import FORMAT_ALIASES, FORMATS, canonical_format
    from .protocol import Encoder


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "FORMATS",
    "FORMAT_ALIASES",
    "BottleneckAdapter",
    "BottleneckConfig",
    "Encoder",
    "LayerAdapters",
    "SciEmbedConfig",
    "SciEmbedModel",
    "canonical_format",
    "default_device",
    "default_dtype",
    "length_sorted_batches",
    "load_adapter",
    "load_model",
    "parse_dtype",
    "save_model",
]
