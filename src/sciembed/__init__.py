"""sciembed: scientific-document embeddings with task-format adapters (SPECTER2 style)."""

from .data import Paper, load_papers, read_papers
from .engine import EncodeOptions
from .model import Encoder, load_model

__version__ = "0.1.0"


def __getattr__(name: str):
    """``SciEmbedModel`` and ``save_model`` on first use: importing them imports torch (seconds), which
    the exported (ONNX / OpenVINO) backends never need."""
    if name in ("SciEmbedModel", "save_model"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(name_or_path=None, **kwargs) -> Encoder:
    """Load a model by folder or hub name (``None`` for the default); see :func:`sciembed.model.load_model`.

    Every backend (``backend="torch"``, ``"onnx"`` or ``"openvino"``) returns an :class:`Encoder`.
    """
    return load_model(name_or_path, **kwargs)


__all__ = [
    "EncodeOptions",
    "Encoder",
    "Paper",
    "SciEmbedModel",
    "__version__",
    "load",
    "load_model",
    "load_papers",
    "read_papers",
    "save_model",
]
