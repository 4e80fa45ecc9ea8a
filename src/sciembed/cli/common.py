"""Shared pieces of the command line: the root app, how failures end a command, and help texts.

Every failure ends with one line ``error: <file>[:<line>][ (id ...)]: <what is wrong>`` on stderr
and a non-zero exit status: 2 for bad input or settings, 1 for anything unexpected, 130 for Ctrl-C.
Tracebacks only with ``sciembed --debug ...`` (or ``SCIEMBED_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the input or the settings are wrong", not "sciembed is broken"."""
    from ..evaluate.loaders import TaskDataError
    from ..evaluate.registry import TaskFileError

    return (ValueError, OSError, ImportError, TaskDataError, TaskFileError)


def _debug(ctx: typer.Context | None) -> bool:
    if os.environ.get("SCIEMBED_DEBUG", "") not in ("", "0"):
        return True
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and (root.obj or {}).get("debug"))


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text


def _print_error(text: str) -> None:
    sys.stderr.flush()
    # A progress bar may have left the cursor mid-line: start the message on a line of its own.
    typer.echo("\r\033[K" if sys.stderr.isatty() else "", err=True, nl=False)
    typer.echo(f"error: {text}", err=True)


class SafeGroup(TyperGroup):
    """The root command group: turns any failure of a command into the one-line error and exit status."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except _Failed as failed:
            if _debug(ctx):
                raise failed.error from None
            _print_error(_message(failed.error))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except TyperException as exc:  # a bad option value: one line too, at parse time
            message = getattr(exc, "format_message", None)
            if message is None or type(exc).__name__ == "NoArgsIsHelpError":
                raise
            _print_error(f"{_message(message())} (see --help)")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            _print_error("interrupted (Ctrl-C); finished work is kept: run the same command again to resume")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
            if _debug(ctx):
                raise
            if isinstance(exc, _user_error_types()):
                _print_error(_message(exc))
                raise typer.Exit(EXIT_BAD_INPUT) from None
            _print_error(
                f"internal error: {type(exc).__name__}: {_message(exc)} (rerun with --debug for the traceback)"
            )
            raise typer.Exit(EXIT_INTERNAL) from None


# Plain (click) help: flags show as `--skip-invalid`, not `--skip-invalid <bool>` as typer's rich help does.
app = typer.Typer(
    cls=SafeGroup,
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Scientific-document embeddings (SPECTER2 style).",
)


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"sciembed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure instead of one line."),
) -> None:
    """Scientific-document embeddings (SPECTER2 style)."""
    ctx.obj = {**(ctx.obj or {}), "debug": debug}


def job_runner(ctx: typer.Context, name: str, default: Any) -> Any:
    """The function that runs a command's work: ``default``, or the one that the caller invoking the
    app handed in its root ``obj`` under ``name`` (``CliRunner().invoke(app, args, obj={name: fn})``:
    a test or a notebook checks what the command line passes on without running the job)."""
    return (ctx.find_root().obj or {}).get(name, default)


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


class _Failed(Exception):
    """Carries a command's bad-input error to :class:`SafeGroup` (which shows it, or with --debug re-raises it)."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _fail(exc: Exception) -> NoReturn:
    """Bad input ends the command with its message on stderr and exit status 2."""
    raise _Failed(exc) from exc


def check_device(device: str | None) -> str | None:
    """A ``--device`` value torch understands and this machine has; a clear message otherwise."""
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise typer.BadParameter(f"{device!r} is not a device; use cpu, cuda, cuda:1, mps ...") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise typer.BadParameter(f"{device!r}: no CUDA GPU is available here; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise typer.BadParameter(f"{device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise typer.BadParameter(f"{device!r}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise typer.BadParameter(f"{device!r}: sciembed runs on cpu, cuda or mps")
    return device


MODEL_HELP = "Model folder or hub name (default: the shipped sciembed model, else all-MiniLM-L6-v2)."
BACKEND_HELP = (
    "torch, onnx or openvino (CPU; an export folder, or a model folder, exported once into a cache). "
    "`-m onnx:DIR` says the same for one model."
)
DEVICE_HELP = "cpu, cuda, cuda:1 ... (default: cuda if available)."
