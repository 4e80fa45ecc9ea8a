"""Run exported sciembed graphs with OpenVINO on the CPU, behind the same ``encode`` API as the model.

``load_model(folder, backend="openvino")`` returns an :class:`OpenVinoEncoder` for a folder written by
``sciembed export openvino`` (OpenVINO IR, int8 through NNCF by default) or by ``sciembed export
onnx`` (OpenVINO reads ONNX graphs too). Each format's graph is compiled once for the CPU with as
many inference threads as the process may use cores, one stream and the latency hint (one batch at
a time, every core on it); :mod:`sciembed.engine.backends.openvino` runs the batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .export_names import ONNX_CONFIG, OPENVINO_CONFIG
from .exported import ExportedEncoder


class OpenVinoEncoder(ExportedEncoder):
    """An exported sciembed model run by OpenVINO: ``encode(papers, format, ...)``."""

    backend = "openvino"
    settings_file = OPENVINO_CONFIG

    def compile_graph(self, path: Path) -> Any:
        import openvino as ov

        core = ov.Core()
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",  # no silent bf16 on CPUs that have it: fp32 or int8 as exported
        }
        return core.compile_model(core.read_model(str(path)), "CPU", config)


def is_openvino_folder(folder: str | Path) -> bool:
    return any((Path(folder) / name).is_file() for name in (OPENVINO_CONFIG, ONNX_CONFIG))


def load_openvino(folder: str | Path, threads: int | None = None) -> OpenVinoEncoder:
    """An :class:`OpenVinoEncoder` for an OpenVINO export folder, or an ONNX export folder."""
    folder = Path(folder)
    for candidate in (folder, folder / "openvino", folder / "onnx"):
        for name in (OPENVINO_CONFIG, ONNX_CONFIG):
            if (candidate / name).is_file():
                return OpenVinoEncoder(candidate, threads=threads, settings_file=name)
    raise FileNotFoundError(
        f"{folder}: not an OpenVINO or ONNX export (no {OPENVINO_CONFIG}); "
        "write one with `sciembed export openvino MODEL OUT`"
    )
