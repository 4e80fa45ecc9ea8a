"""Export a sciembed model to OpenVINO IR: one graph per format with its adapter inside, int8 by NNCF.

Each format's graph is traced to ONNX exactly as :func:`sciembed.model.export.export_onnx` does
(adapter, pooling and normalisation inside, dynamic batch and sequence axes), converted with
``openvino.convert_model`` and, with ``int8`` (the default), quantised by NNCF's post-training
quantisation (``nncf.quantize``, ``ModelType.TRANSFORMER``: int8 weights per channel and int8
activations with static scales) calibrated on real abstracts: by default the 256 arXiv abstracts
(CC0 metadata) shipped in ``sciembed/model/calibration/``, or any papers file. The folder holds
``<format>.xml`` / ``.bin`` (``<format>.int8.xml`` when quantised), the tokenizer and
``sciembed-openvino.json``, which :class:`sciembed.model.openvino_backend.OpenVinoEncoder` reads.
Needs the ``openvino`` extra (``pip install sciembed[openvino]``: openvino and nncf).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibrate import CALIBRATION_FILE, calibration_batches, calibration_papers
from .encoder import SciEmbedModel
from .export import BASE_GRAPH, DEFAULT_OPSET, _export_graph, export_settings, on_cpu_in_fp32
from .export_names import OPENVINO_CONFIG
from .formats import canonical_format

#: Groups of GEMMs that ``keep_fp32`` leaves unquantised (NNCF ignored scope, by traced node name).
KEEP_FP32_PATTERNS: dict[str, str] = {
    "ffn_out": r"^(?!.*attention).*/output/dense/MatMul.*",
    "adapters": r".*adapter.*",
}


def _quantize(graph: Any, batches: list[dict[str, np.ndarray]], keep_fp32: Sequence[str]) -> Any:
    import nncf

    unknown = sorted(set(keep_fp32) - set(KEEP_FP32_PATTERNS))
    if unknown:
        raise ValueError(f"unknown keep_fp32 group(s) {unknown}; known: {sorted(KEEP_FP32_PATTERNS)}")
    ignored = nncf.IgnoredScope(patterns=[KEEP_FP32_PATTERNS[g] for g in keep_fp32], validate=False)
    return nncf.quantize(
        graph,
        nncf.Dataset(batches),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(batches),  # NNCF counts dataset items: batches
        ignored_scope=ignored,
    )


def export_openvino(
    model: SciEmbedModel | str | Path,
    output: str | Path,
    formats: Sequence[str] | None = None,
    int8: bool = True,
    calibration: str | Path | None = None,
    calibration_size: int = 256,
    keep_fp32: Sequence[str] = (),
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write one OpenVINO graph per format (default: all of the model's formats) into ``output``.

    ``int8``: NNCF post-training quantisation calibrated on ``calibration`` (a papers JSON-lines
    file; default the shipped arXiv abstracts), its first ``calibration_size`` papers;
    ``keep_fp32``: GEMM groups left in fp32 (``KEEP_FP32_PATTERNS``). Returns the output folder,
    which ``load_model(output, backend="openvino")`` loads.
    """
    import openvino as ov

    if not isinstance(model, SciEmbedModel):
        from .folder import load_model

        model = load_model(model)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    names = [canonical_format(f) for f in formats] if formats else (model.formats or [BASE_GRAPH])
    for name in names:
        if name != BASE_GRAPH:
            model.adapter_for_format(name)  # raises for a format the model has no adapter for
    papers = calibration_papers(calibration, calibration_size) if int8 else []
    graphs: dict[str, str] = {}
    with on_cpu_in_fp32(model), tempfile.TemporaryDirectory() as tmp:
        batches = calibration_batches(model, papers)
        for name in dict.fromkeys(names):
            traced = Path(tmp) / f"{name}.onnx"
            _export_graph(model, None if name == BASE_GRAPH else name, traced, opset)
            graph = ov.convert_model(str(traced))
            if int8:
                graph = _quantize(graph, batches, keep_fp32)
            filename = f"{name}.int8.xml" if int8 else f"{name}.xml"
            ov.save_model(graph, str(output / filename), compress_to_fp16=False)
            graphs[name] = filename
    model.tokenizer.save_pretrained(str(output))
    config = export_settings(
        model,
        graphs,
        runtime="openvino",
        quantization="int8-nncf-ptq" if int8 else None,
        calibration={"file": str(calibration or CALIBRATION_FILE.name), "papers": len(papers)} if int8 else None,
        kept_fp32=sorted(keep_fp32) if int8 else [],
        opset=opset,
        openvino=ov.__version__,
    )
    (output / OPENVINO_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return output
