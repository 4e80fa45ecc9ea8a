"""Run exported sciembed ONNX graphs with onnxruntime, behind the same ``encode`` API as the model.

``load_model(folder, backend="onnx")`` returns an :class:`OnnxEncoder` for a folder written by
``sciembed export onnx`` (see :mod:`sciembed.model.export`): the tokenizer, the settings and one
onnxruntime session per format with as many intra-op threads as the process may use cores. The
engine moves documents through it as through the PyTorch model (:mod:`sciembed.engine.backends.onnx`
runs the batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .export_names import ONNX_CONFIG
from .exported import ExportedEncoder, available_cores

__all__ = ["OnnxEncoder", "available_cores", "is_onnx_folder", "load_onnx"]


def is_onnx_folder(folder: str | Path) -> bool:
    return (Path(folder) / ONNX_CONFIG).is_file()


class OnnxEncoder(ExportedEncoder):
    """An exported sciembed model: ``encode(papers, format, ...)`` as :meth:`SciEmbedModel.encode`."""

    backend = "onnx"
    settings_file = ONNX_CONFIG
    precision_names = ("fp32", "int8")

    def __init__(self, folder: str | Path, threads: int | None = None, providers: Sequence[str] | None = None):
        super().__init__(folder, threads)
        self.providers = list(providers or ["CPUExecutionProvider"])

    @property
    def dtype(self) -> str:
        return "onnx-int8" if self.quantization else "onnx-fp32"

    def place(self, device: Any = None, dtype: Any = None) -> OnnxEncoder:
        """The ONNX backend runs where its sessions run (onnxruntime's CPU provider by default)."""
        if self.providers == ["CPUExecutionProvider"]:
            return super().place(device, dtype)
        return super().place(None, dtype)

    def session(self, format: str | None, threads: int | None = None):
        """The onnxruntime session of ``format``'s graph with ``threads`` intra-op threads (default:
        the encoder's, all usable cores); each kind is made once."""
        if threads is None or threads == self.threads:
            return self.compiled(format)
        key = (self.graph_name(format), threads)
        sessions = self.__dict__.setdefault("_sessions_by_threads", {})
        if key not in sessions:
            sessions[key] = self._open(self.folder / self.graphs[key[0]], threads)
        return sessions[key]

    def compile_graph(self, path: Path):
        return self._open(path, self.threads)

    def _open(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), options, providers=self.providers)


def load_onnx(folder: str | Path, threads: int | None = None) -> OnnxEncoder:
    """An :class:`OnnxEncoder` for an export folder (or a model folder holding one in ``onnx/``)."""
    folder = Path(folder)
    for candidate in (folder, folder / "onnx"):
        if is_onnx_folder(candidate):
            return OnnxEncoder(candidate, threads=threads)
    raise FileNotFoundError(
        f"{folder}: not an ONNX export (no {ONNX_CONFIG}); write one with `sciembed export onnx MODEL OUT`"
    )
