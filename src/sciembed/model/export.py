"""Export a sciembed model to ONNX: one graph per task format with its adapter inside.

Each graph maps ``input_ids`` and ``attention_mask`` (int64, ``batch x sequence``, both dynamic) to
the pooled (and, if configured, L2-normalised) ``embedding`` (float32, ``batch x hidden``): the
encoder, the format's bottleneck adapters and the pooling are one graph, not a base chained with an
adapter. The router's active adapter is a Python attribute read while tracing, so tracing with a
format active bakes exactly that format's adapter weights into the graph.

Next to the graphs: the tokenizer files and ``sciembed-onnx.json`` (formats and their files,
pooling, normalisation, truncation length, text fields, quantisation), which
:class:`sciembed.model.onnx_backend.OnnxEncoder` reads. Needs the ``onnx`` extra
(``pip install sciembed[onnx]``: onnx and onnxruntime).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .encoder import SciEmbedModel
from .export_names import BASE_GRAPH, ONNX_CONFIG, ONNX_FORMAT_VERSION
from .formats import canonical_format

DEFAULT_OPSET = 17


class _FormatGraph(nn.Module):
    """``SciEmbedModel.forward`` with one format fixed, as a two-input module for the exporter."""

    def __init__(self, model: SciEmbedModel, format: str | None):
        super().__init__()
        self.model = model
        self.format = format

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask, format=self.format).float()


def _sample_inputs(model: SciEmbedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Two documents of different lengths, so the padding mask is a real (traced) computation."""
    texts = ["Graph neural networks for citation recommendation " * 3, "Protein folding"]
    batch = model.collate(model.tokenize(texts))
    return batch["input_ids"], batch["attention_mask"]


@contextmanager
def _eager_attention(model: SciEmbedModel):
    """Trace Hugging Face's eager attention (scores + additive mask, softmax) instead of SDPA: the
    exporter turns SDPA's boolean mask and its NaN guard into two ``Where`` nodes over every
    (batch, heads, L, L) score tensor, which took 33-40 % of onnxruntime's CPU time
    (``benchmarks/profile_cpu.py``); the eager form costs one broadcast ``Add``."""
    config = model.base.config
    before = getattr(config, "_attn_implementation", None)
    if before is None:
        yield
        return
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = before


@contextmanager
def on_cpu_in_fp32(model: SciEmbedModel):
    """The model on the CPU in fp32 and in eval mode while exporting; put back as it was afterwards."""
    was_training, device, dtype = model.training, model.device, model.dtype
    model.place("cpu", torch.float32).eval()
    try:
        yield model
    finally:
        model.place(device, dtype)
        model.train(was_training)


def export_settings(model: SciEmbedModel, graphs: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The settings file's content: what an exported encoder needs besides its graphs and tokenizer."""
    return {
        "format_version": ONNX_FORMAT_VERSION,
        "name": model.config.name,
        "graphs": graphs,
        "pooling": model.config.pooling,
        "normalize": model.config.normalize,
        "max_length": model.config.max_length,
        "text_fields": list(model.config.text_fields),
        "hidden_size": model.hidden_size,
        **extra,
        "source_fingerprint": model.fingerprint,
        "inputs": ["input_ids", "attention_mask"],
        "output": "embedding",
    }


def _export_graph(model: SciEmbedModel, format: str | None, path: Path, opset: int) -> None:
    graph = _FormatGraph(model, format).eval()
    inputs = _sample_inputs(model)
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "embedding": {0: "batch"},
    }
    with warnings.catch_warnings(), torch.no_grad(), _eager_attention(model):
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow in transformers
        torch.onnx.export(
            graph,
            inputs,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _optimize(path: Path, model: SciEmbedModel) -> None:
    """onnxruntime's transformer optimizer (fused attention, LayerNorm, GELU) in place."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.base.config
    optimized = optimize_model(
        str(path),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=1,
        use_gpu=False,
    )
    optimized.save_model_to_file(str(path))


#: Groups of GEMMs that ``keep_fp32`` can leave unquantised, by node name in the traced graph.
#: ``ffn_out``: each layer's feed-forward output projection, whose input (after GELU) has the widest
#: range; ``adapters``: the bottleneck adapters' down and up projections.
KEEP_FP32_GROUPS: dict[str, Callable[[str], bool]] = {
    "ffn_out": lambda name: "/output/dense/" in name and "/attention/" not in name,
    "adapters": lambda name: "adapter" in name,
}


#: The default under int8: the one setting that kept every sciembed-lite task within 1 point of fp32
#: with the shipped model (all GEMMs int8 moved four tasks by 1.0-3.4 points; docs/PERFORMANCE.md).
DEFAULT_KEEP_FP32 = ("adapters", "ffn_out")


def _static_batches(model: SciEmbedModel, calibration: str | Path | None, size: int) -> list[dict[str, Any]]:
    from .calibrate import calibration_batches, calibration_papers

    return calibration_batches(model, calibration_papers(calibration, size))


def _excluded_nodes(path: Path, keep_fp32: Sequence[str]) -> list[str]:
    import onnx

    unknown = sorted(set(keep_fp32) - set(KEEP_FP32_GROUPS))
    if unknown:
        raise ValueError(f"unknown keep_fp32 group(s) {unknown}; known: {sorted(KEEP_FP32_GROUPS)}")
    if not keep_fp32:
        return []
    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "MatMul"]
    return [n for n in names if any(KEEP_FP32_GROUPS[g](n) for g in keep_fp32)]


def _quantize(source: Path, target: Path, per_channel: bool, exclude: Sequence[str] = ()) -> None:
    """Dynamic int8: QInt8 weights of every MatMul (and of the optimizer's fused Attention, whose
    Q/K/V projection is then an int8 GEMM too), activations quantised on the fly."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=["MatMul", "Attention"],
        nodes_to_exclude=list(exclude),
        # optimizer-fused graphs hold contrib ops that shape inference cannot type
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _quantize_static(
    source: Path, target: Path, per_channel: bool, exclude: Sequence[str], batches: list[dict[str, Any]]
) -> None:
    """Static int8 (QDQ): weights QInt8, activations QUInt8 with scales calibrated (min/max) on
    ``batches`` of real abstracts, so no activation is quantised on the fly."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    quantize_static(
        str(source),
        str(target),
        Batches(),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=list(exclude),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "WeightSymmetric": True},
    )


def export_onnx(
    model: SciEmbedModel | str | Path,
    output: str | Path,
    formats: Sequence[str] | None = None,
    int8: bool | str = False,
    optimize: bool = False,
    per_channel: bool = True,
    opset: int = DEFAULT_OPSET,
    keep_fp32: Sequence[str] = DEFAULT_KEEP_FP32,
    calibration: str | Path | None = None,
    calibration_size: int = 256,
) -> Path:
    """Write one ONNX graph per format (default: all of the model's formats) into ``output``.

    ``int8``: ``True`` or ``"dynamic"``: dynamic int8 quantisation of the weights (onnxruntime
    ``quantize_dynamic``); ``"static"``: static QDQ int8 with activation scales calibrated on
    ``calibration`` (papers JSON lines; default the shipped arXiv abstracts, see
    :mod:`sciembed.model.calibrate`), its first ``calibration_size`` papers;
    ``keep_fp32``: groups of GEMMs left in fp32 under ``int8`` (default ``DEFAULT_KEEP_FP32``: the
    adapters and the FFN output projections, see ``KEEP_FP32_GROUPS``; ``()`` quantises every GEMM:
    ~7 % faster, four lite tasks off by more than 1 point);
    ``optimize``: run onnxruntime's BERT graph optimizer first. Returns the output folder, which
    ``load_model(output, backend="onnx")`` loads.
    """
    if int8 not in (False, True, "dynamic", "static"):
        raise ValueError(f"int8 must be False, True, 'dynamic' or 'static', not {int8!r}")
    mode = "static" if int8 == "static" else "dynamic"
    if not isinstance(model, SciEmbedModel):
        from .folder import load_model

        model = load_model(model)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if formats:
        names = [canonical_format(f) for f in formats]
        for name in names:
            model.adapter_for_format(name)  # raises for a format the model has no adapter for
    else:
        names = model.formats or [BASE_GRAPH]
    graphs: dict[str, str] = {}
    with on_cpu_in_fp32(model), tempfile.TemporaryDirectory() as tmp:
        batches = _static_batches(model, calibration, calibration_size) if int8 and mode == "static" else []
        for name in dict.fromkeys(names):
            fp32 = Path(tmp) / f"{name}.onnx"
            _export_graph(model, None if name == BASE_GRAPH else name, fp32, opset)
            if optimize:
                _optimize(fp32, model)
            filename = f"{name}.int8.onnx" if int8 else f"{name}.onnx"
            if int8 and mode == "static":
                _quantize_static(fp32, output / filename, per_channel, _excluded_nodes(fp32, keep_fp32), batches)
            elif int8:
                _quantize(fp32, output / filename, per_channel, _excluded_nodes(fp32, keep_fp32))
            else:
                shutil.copyfile(fp32, output / filename)
            graphs[name] = filename
    model.tokenizer.save_pretrained(str(output))
    config = export_settings(
        model,
        graphs,
        quantization=f"int8-{mode}" + ("-per-channel" if per_channel else "") if int8 else None,
        kept_fp32=sorted(keep_fp32) if int8 else [],
        optimized=optimize,
        opset=opset,
    )
    (output / ONNX_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return output
