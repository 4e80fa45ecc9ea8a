"""Run exported sciembed ONNX graphs with onnxruntime, behind the same ``encode`` API as the model.

``load_model(folder, backend="onnx")`` returns an :class:`OnnxEncoder` for a folder written by
``sciembed export onnx`` (see :mod:`sciembed.model.export`): the tokenizer, the settings and one
onnxruntime session per format with as many intra-op threads as the process may use cores. The
engine moves documents through it as through the PyTorch model (:mod:`sciembed.engine.backends.onnx`
runs the batches).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import SciEmbedConfig
from .encoding import EngineEncode
from .export import BASE_GRAPH, ONNX_CONFIG
from .formats import canonical_format
from .text import TextMixin, pad_ids


def is_onnx_folder(folder: str | Path) -> bool:
    return (Path(folder) / ONNX_CONFIG).is_file()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxEncoder(EngineEncode, TextMixin):
    """An exported sciembed model: ``encode(papers, format, ...)`` as :meth:`SciEmbedModel.encode`."""

    def __init__(self, folder: str | Path, threads: int | None = None, providers: Sequence[str] | None = None):
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        path = self.folder / ONNX_CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{self.folder}: no {ONNX_CONFIG}; write one with `sciembed export onnx`")
        self.onnx_config: dict[str, Any] = json.loads(path.read_text())
        settings = self.onnx_config
        self.graphs: dict[str, str] = dict(settings["graphs"])
        self.config = SciEmbedConfig(
            pooling=settings["pooling"],
            normalize=bool(settings["normalize"]),
            max_length=int(settings["max_length"]),
            formats=[f for f in self.graphs if f != BASE_GRAPH],
            text_fields=list(settings["text_fields"]),
            name=str(settings.get("name", "")),
        )
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.threads = threads or available_cores()
        self.providers = list(providers or ["CPUExecutionProvider"])
        self._sessions: dict[str, Any] = {}
        self._fingerprint: str | None = None

    # ---- what SciEmbedModel also offers ------------------------------------------------------------
    backend = "onnx"

    @property
    def hidden_size(self) -> int:
        return int(self.onnx_config["hidden_size"])

    @property
    def dimension(self) -> int:
        return self.hidden_size

    @property
    def name(self) -> str:
        return self.config.name or self.folder.name

    @property
    def formats(self) -> list[str]:
        return list(self.config.formats)

    @property
    def quantization(self) -> str | None:
        return self.onnx_config.get("quantization")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> str:
        return "onnx-int8" if self.quantization else "onnx-fp32"

    def adapter_for_format(self, format: str | None) -> str | None:
        if format is None or not self.formats:
            return None
        name = canonical_format(format)
        if name not in self.graphs:
            raise ValueError(f"ONNX export has no {name!r} graph; it has: {', '.join(self.formats)}")
        return name

    def place(self, device: str | torch.device | None = None, dtype: Any = None) -> OnnxEncoder:
        """The ONNX backend runs where its sessions run (onnxruntime's CPU provider by default)."""
        if device is not None and torch.device(device).type != "cpu" and self.providers == ["CPUExecutionProvider"]:
            raise ValueError("the ONNX backend runs on CPU; use the PyTorch backend for CUDA")
        if dtype is not None and dtype not in ("fp32", "float32", torch.float32):
            raise ValueError(f"the ONNX backend computes in its exported precision ({self.dtype}), not {dtype}")
        return self

    def eval(self) -> OnnxEncoder:
        return self

    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        input_ids, mask = pad_ids(ids, self.tokenizer.pad_token_id or 0)
        return {"input_ids": input_ids, "attention_mask": mask}

    def session(self, format: str | None):
        import onnxruntime as ort

        name = self.adapter_for_format(format) or BASE_GRAPH
        if name not in self._sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._sessions[name] = ort.InferenceSession(
                str(self.folder / self.graphs[name]), options, providers=self.providers
            )
        return self._sessions[name]

    @property
    def fingerprint(self) -> str:
        """sha256 over the graphs and the settings (the ONNX counterpart of the model's fingerprint)."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(json.dumps(self.onnx_config, sort_keys=True).encode())
            for name in sorted(self.graphs):
                with open(self.folder / self.graphs[name], "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def load_onnx(folder: str | Path, threads: int | None = None) -> OnnxEncoder:
    """An :class:`OnnxEncoder` for an export folder (or a model folder holding one in ``onnx/``)."""
    folder = Path(folder)
    for candidate in (folder, folder / "onnx"):
        if is_onnx_folder(candidate):
            return OnnxEncoder(candidate, threads=threads)
    raise FileNotFoundError(
        f"{folder}: not an ONNX export (no {ONNX_CONFIG}); write one with `sciembed export onnx MODEL OUT`"
    )
