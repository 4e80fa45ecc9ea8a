"""Shared pieces of the command line: the root app, the bad-input exit and help texts."""

from __future__ import annotations

from typing import NoReturn

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Scientific-document embeddings (SPECTER2 style).")


def _fail(exc: Exception) -> NoReturn:
    """Bad input ends the command with its message on stderr and exit status 2."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


MODEL_HELP = "Model folder or hub name (default: the shipped sciembed model, else all-MiniLM-L6-v2)."
BACKEND_HELP = (
    "torch, or onnx (the model is a `sciembed export onnx` folder; CPU). `-m onnx:DIR` says the same for one model."
)
