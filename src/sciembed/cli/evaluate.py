"""`sciembed evaluate`: SciRepEval-style benchmark runs."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import BACKEND_HELP, DEVICE_HELP, _fail, app, check_device

EVAL_MODEL_HELP = "bm25, random, default, minilm, a model folder or hub name, onnx:DIR (repeat to compare)."
EVAL_TASKS_HELP = (
    "'lite' (sciembed-lite, built from ../shared/data), a built suite folder, or a scirepeval_tasks.jsonl-style file."
)


@app.command()
def evaluate(
    model: list[str] = typer.Option(..., "--model", "-m", help=EVAL_MODEL_HELP),
    tasks: str = typer.Option("lite", "--tasks", "-t", help=EVAL_TASKS_HELP),
    task: list[str] = typer.Option(None, "--task", help="Run only this task (repeatable)."),
    output: Path = typer.Option(Path("runs/evaluate"), "--output", "-o", help="Folder for the results."),
    device: str = typer.Option(None, "--device", help=DEVICE_HELP, callback=check_device),
    cache_dir: Path = typer.Option(Path(".cache/embeddings"), "--cache-dir", help="Embedding cache folder."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1),
    n_jobs: int = typer.Option(1, "--n-jobs", help="Parallel jobs of the SVM grid searches."),
    data_root: Path = typer.Option(None, "--data-root", help="Shared data for sciembed-lite (default ../shared/data)."),
    reference: str = typer.Option(
        None, "--reference", help="Model (as given to --model) the others are compared with (default: the first)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Paired-bootstrap resamples of the intervals (0: none)."),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
) -> None:
    """Evaluate models on SciRepEval-format tasks; writes results.json, a markdown table and PNG charts.

    With two or more models: paired-bootstrap 95% intervals of every difference vs the reference; with
    three or more: a task-correlation heatmap."""
    from ..evaluate.benchmark import report_markdown
    from ..evaluate.command import run_evaluate
    from ..evaluate.loaders import TaskDataError
    from ..evaluate.outcome import evaluation_failure
    from ..evaluate.registry import TaskFileError

    try:
        report = run_evaluate(
            model,
            tasks,
            output,
            device,
            task,
            None if no_cache else cache_dir,
            batch_size,
            n_jobs,
            data_root,
            reference=reference,
            n_boot=bootstrap,
            backend=backend,
        )
    except (TaskFileError, TaskDataError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    typer.echo(report_markdown(report))
    problem = evaluation_failure(report)
    if problem is not None:  # the reports are written, but nothing useful happened
        _fail(ValueError(f"{output}: {problem}"))
