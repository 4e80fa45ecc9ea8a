"""`sciembed export ...`: models for other runtimes."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import MODEL_HELP, _fail, app

export_app = typer.Typer(no_args_is_help=True, help="Export a model for other runtimes.")
app.add_typer(export_app, name="export")


def _keep_fp32(values: list[str] | None) -> tuple[str, ...]:
    """``--keep-fp32`` values: none given -> the library default; ``none`` -> quantise every GEMM."""
    from ..model.export import DEFAULT_KEEP_FP32

    if not values:
        return DEFAULT_KEEP_FP32
    return () if values == ["none"] else tuple(values)


@export_app.command("onnx")
def export_onnx_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    output: Path = typer.Argument(..., help="Folder to write: one .onnx graph per format, tokenizer, settings."),
    format: list[str] = typer.Option(None, "--format", "-f", help="Format to export (repeatable; default: all)."),
    int8: bool = typer.Option(False, "--int8", help="Dynamic int8 quantisation of the weights (onnxruntime)."),
    static: bool = typer.Option(
        False, "--static", help="With --int8: static QDQ int8, activations calibrated on real abstracts."
    ),
    calibration: Path = typer.Option(
        None, "--calibration", help="With --static: papers (JSON lines) to calibrate on (default: shipped arXiv)."
    ),
    optimize: bool = typer.Option(False, "--optimize", help="Run onnxruntime's BERT graph optimizer first."),
    keep_fp32: list[str] = typer.Option(
        None,
        "--keep-fp32",
        help="With --int8: GEMMs left in fp32, repeatable: ffn_out, adapters (the default: both), or none.",
    ),
    opset: int = typer.Option(17, "--opset"),
) -> None:
    """Write ONNX graphs (adapter inside) for `sciembed embed --backend onnx` and load(..., backend="onnx")."""
    from ..model import load_model
    from ..model.export import export_onnx

    if static and not int8:
        _fail(ValueError("--static needs --int8"))
    try:
        encoder = load_model(model)
        folder = export_onnx(
            encoder,
            output,
            formats=format or None,
            int8=("static" if static else True) if int8 else False,
            optimize=optimize,
            opset=opset,
            keep_fp32=_keep_fp32(keep_fp32),
            calibration=calibration,
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        _fail(exc)
    typer.echo(f"wrote {', '.join(sorted(p.name for p in folder.glob('*.onnx')))} to {folder}")


@export_app.command("openvino")
def export_openvino_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    output: Path = typer.Argument(..., help="Folder to write: one OpenVINO graph per format, tokenizer, settings."),
    format: list[str] = typer.Option(None, "--format", "-f", help="Format to export (repeatable; default: all)."),
    fp32: bool = typer.Option(False, "--fp32", help="Keep fp32 (default: int8 through NNCF, calibrated)."),
    calibration: Path = typer.Option(
        None, "--calibration", help="Papers (JSON lines) to calibrate int8 on (default: 256 shipped arXiv abstracts)."
    ),
    calibration_size: int = typer.Option(256, "--calibration-size", min=1, help="Calibration papers used."),
    keep_fp32: list[str] = typer.Option(None, "--keep-fp32", help="GEMMs left in fp32, repeatable: ffn_out, adapters."),
) -> None:
    """Write OpenVINO graphs (adapter inside, int8 by default) for `sciembed embed --backend openvino`."""
    from ..model import load_model
    from ..model.export_openvino import export_openvino

    try:
        encoder = load_model(model)
        folder = export_openvino(
            encoder,
            output,
            formats=format or None,
            int8=not fp32,
            calibration=calibration,
            calibration_size=calibration_size,
            keep_fp32=tuple(keep_fp32 or ()),
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:
        _fail(exc)
    typer.echo(f"wrote {', '.join(sorted(p.name for p in folder.glob('*.xml')))} to {folder}")
