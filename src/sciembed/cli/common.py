"""Shared pieces of the command line: the root app, the bad-input exit and help texts."""

from __future__ import annotations

from typing import NoReturn

import typer

# Plain (click) help: flags show as `--skip-invalid`, not `--skip-invalid <bool>` as typer's rich help does.
app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Scientific-document embeddings (SPECTER2 style).",
)


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"sciembed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Scientific-document embeddings (SPECTER2 style)."""


def _refuse_dash(path: object, what: str) -> None:
    """``-`` (stdin/stdout) where a command needs a real file: a clear error instead of a file named ``-``."""
    if str(path) == "-":
        _fail(ValueError(f"{what} cannot be '-' (standard input/output): {_DASH_REASONS[what]}"))


_DASH_REASONS = {
    "INPUT": "a resumable job needs a file it can read again; save the papers to a file first",
    "OUTPUT": "Parquet is written in resumable chunks and renamed into place; give a file name",
    "MODEL": "a model is a folder or a hub name",
    "A": "an embeddings file is read by random access; give a file name",
    "B": "an embeddings file is read by random access; give a file name",
}


def _echo_json(data: object) -> None:
    import json

    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _fail(exc: Exception) -> NoReturn:
    """Bad input ends the command with its message on stderr and exit status 2."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from None


MODEL_HELP = "Model folder or hub name (default: the shipped sciembed model, else all-MiniLM-L6-v2)."
BACKEND_HELP = (
    "torch, or onnx (the model is a `sciembed export onnx` folder; CPU). `-m onnx:DIR` says the same for one model."
)
