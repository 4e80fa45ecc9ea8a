"""The ``sciembed evaluate`` command's body (the Typer wrapper lives in ``sciembed.cli``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import SuiteResult

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
    backend: str = "torch",
) -> SuiteResult:
    """Load the tasks, run every model, write ``results.json`` / ``results.md`` / ``results.png``."""
    from rich.console import Console

    from .baselines import resolve_model
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
        model_loader=partial(resolve_model, backend=backend),
    )
