"""The ``sciembed evaluate`` command's body (the Typer wrapper lives in ``sciembed.cli``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = Path("runs") / "evaluate"
DEFAULT_CACHE = Path(".cache") / "embeddings"


def run_evaluate(
    models: Sequence[str],
    tasks: str = "lite",
    output: str | Path = DEFAULT_OUTPUT,
    device: str | None = None,
    task_names: Sequence[str] | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    batch_size: int = 32,
    n_jobs: int = 1,
    data_root: str | Path | None = None,
    quiet: bool = False,
    reference: str | None = None,
    n_boot: int | None = None,
) -> dict[str, Any]:
    """Load the tasks, run every model, write ``results.json`` / ``results.md`` / ``results.png``."""
    from rich.console import Console

    from .benchmark import run_benchmark
    from .bootstrap import N_BOOT
    from .tasks import load_tasks

    console = Console(stderr=True, quiet=quiet)
    task_list = load_tasks(
        tasks,
        names=list(task_names or []) or None,
        data_root=data_root,
        log=lambda msg: console.print(f"[yellow]{msg}[/yellow]"),
    )
    console.print(f"{len(task_list)} tasks, {len(models)} models -> {output}")
    return run_benchmark(
        list(models),
        task_list,
        output_dir=output,
        device=device,
        cache_dir=cache_dir,
        batch_size=batch_size,
        n_jobs=n_jobs,
        console=console,
        reference=reference,
        n_boot=N_BOOT if n_boot is None else n_boot,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sciembed.evaluate``: the same options as ``sciembed evaluate``."""
    from .loaders import TaskDataError
    from .registry import TaskFileError

    parser = argparse.ArgumentParser(prog="python -m sciembed.evaluate", description=__doc__)
    parser.add_argument(
        "--model",
        "-m",
        action="append",
        required=True,
        help="bm25, random, default, minilm, a model folder or hub name (repeatable)",
    )
    parser.add_argument("--tasks", "-t", default="lite", help="'lite', a built suite folder or a task file")
    parser.add_argument("--task", action="append", default=None, help="only this task (repeatable)")
    parser.add_argument("--output", "-o", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--device", default=None)
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--reference", default=None)
    parser.add_argument("--bootstrap", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        report = run_evaluate(
            args.model,
            args.tasks,
            args.output,
            args.device,
            args.task,
            None if args.no_cache else args.cache_dir,
            args.batch_size,
            args.n_jobs,
            args.data_root,
            reference=args.reference,
            n_boot=args.bootstrap,
        )
    except (TaskFileError, TaskDataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .benchmark import report_markdown

    print(report_markdown(report))
    return 0
