"""What every exported sciembed model shares, whatever runtime runs its graphs (onnxruntime, OpenVINO).

An export folder holds one graph per format (adapter, pooling and normalisation inside), the
tokenizer, and a settings file (``sciembed-onnx.json`` or ``sciembed-openvino.json``, written by
:mod:`sciembed.model.export` / :mod:`sciembed.model.export_openvino`). :class:`ExportedEncoder`
reads them and offers the model's ``encode`` API; a subclass says how a format's graph is compiled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import SciEmbedConfig
from .encoding import EngineEncode
from .export_names import BASE_GRAPH
from .export_tokenizer import export_tokenizer
from .formats import canonical_format
from .host import available_cores
from .text import TextMixin, pad_ids


def graph_files(folder: Path, graphs: dict[str, str]) -> list[Path]:
    """Every file of the graphs (an OpenVINO ``.xml`` has its weights in the ``.bin`` beside it)."""
    files = []
    for name in sorted(graphs):
        path = folder / graphs[name]
        files.append(path)
        if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
            files.append(path.with_suffix(".bin"))
    return files


class HostDevice(str):
    """``"cpu"`` with ``torch.device``'s ``type`` and ``index``: where an export runs, named without
    importing torch (``torch.device(encoder.device)`` still works)."""

    type = "cpu"
    index = None


class ExportedEncoder(EngineEncode, TextMixin):
    """An export folder: ``encode(papers, format, ...)`` as :meth:`SciEmbedModel.encode`, on CPU.

    Subclasses set ``backend`` (the runner's name in :data:`sciembed.engine.backends.RUNNERS`),
    ``settings_file`` and :meth:`compile_graph`; compiled graphs are kept per format.
    """

    backend = ""
    settings_file = ""
    precision_names = ("fp32", "int8")

    def __init__(self, folder: str | Path, threads: int | None = None, settings_file: str | None = None):
        self.folder = Path(folder)
        path = self.folder / (settings_file or self.settings_file)
        if not path.is_file():
            raise FileNotFoundError(f"{self.folder}: no {path.name}; write one with `sciembed export {self.backend}`")
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
        self.tokenizer = export_tokenizer(self.folder)
        self.threads = threads or available_cores()
        self._compiled: dict[str, Any] = {}
        self._fingerprint: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return self.onnx_config

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
    def device(self) -> HostDevice:
        return HostDevice("cpu")

    @property
    def dtype(self) -> str:
        return f"{self.backend}-{self.precision_names[1] if self.quantization else self.precision_names[0]}"

    def adapter_for_format(self, format: str | None) -> str | None:
        if format is None or not self.formats:
            return None
        name = canonical_format(format)
        if name not in self.graphs:
            raise ValueError(f"{self.backend} export has no {name!r} graph; it has: {', '.join(self.formats)}")
        return name

    def place(self, device: Any = None, dtype: Any = None) -> ExportedEncoder:
        """An export runs on the CPU, in its exported precision."""
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f"the {self.backend} backend runs on CPU; use the PyTorch backend for CUDA")
        if dtype is not None and str(dtype) not in ("fp32", "float32", "torch.float32"):
            raise ValueError(
                f"the {self.backend} backend computes in its exported precision ({self.dtype}), not {dtype}"
            )
        return self

    def eval(self) -> ExportedEncoder:
        return self

    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        input_ids, mask = pad_ids(ids, self.tokenizer.pad_token_id or 0)
        return {"input_ids": input_ids, "attention_mask": mask}

    def graph_name(self, format: str | None) -> str:
        return self.adapter_for_format(format) or BASE_GRAPH

    def compiled(self, format: str | None) -> Any:
        """The runtime's compiled graph of ``format`` (compiled once per encoder)."""
        name = self.graph_name(format)
        if name not in self._compiled:
            self._compiled[name] = self.compile_graph(self.folder / self.graphs[name])
        return self._compiled[name]

    def compile_graph(self, path: Path) -> Any:
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """sha256 over the graphs and the settings (the export's counterpart of the model's fingerprint)."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(json.dumps(self.onnx_config, sort_keys=True).encode())
            for path in graph_files(self.folder, self.graphs):
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint
