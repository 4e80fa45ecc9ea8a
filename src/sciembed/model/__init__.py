"""The encoder: Hugging Face base, pooling, bottleneck adapters per task format, model folders."""

from ..engine.batching import length_sorted_batches  # kept here for older imports
from .adapters import BottleneckAdapter, BottleneckConfig, LayerAdapters
from .config import SciEmbedConfig
from .encoder import SciEmbedModel, default_device, default_dtype, parse_dtype
from .folder import load_adapter, load_model, save_model
from .formats import FORMAT_ALIASES, FORMATS, canonical_format
from .protocol import Encoder

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
