"""The command line: parses arguments and calls library functions, nothing else."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Scientific-document embeddings (SPECTER2 style).")

MODEL_HELP = "Model folder or hub name (default: the shipped sciembed model, else all-MiniLM-L6-v2)."


@app.command()
def embed(
    input: Path = typer.Argument(..., help="Papers: JSON lines (.jsonl, .jsonl.gz), a JSON array, or Parquet."),
    output: Path = typer.Argument(..., help="Parquet file to write (paper_id, embedding)."),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    format: str = typer.Option(
        "proximity",
        "--format",
        "-f",
        help="proximity, classification, regression, adhoc_query or [PRX]/[CLF]/[RGN]/[QRY].",
    ),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
    dtype: str = typer.Option(None, "--dtype", help="fp32, bf16 or fp16 (default: fp32 on CPU, bf16 on GPU)."),
    id_field: str = typer.Option(None, "--id-field", help="Id field (default: paper_id, corpus_id, doc_id or id)."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Skip bad records and report them instead of stopping."
    ),
    chunk_size: int = typer.Option(10_000, "--chunk-size", help="Papers per written (and resumable) chunk."),
    limit: int = typer.Option(None, "--limit", help="Embed only the first N valid papers."),
) -> None:
    """Embed a file of papers into Parquet; rerun the same command to resume a killed job."""
    from .embed import embed_file
    from .model import load_model

    encoder = load_model(model)
    try:
        report = embed_file(
            encoder,
            input,
            output,
            format=format,
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            id_field=id_field,
            skip_invalid=skip_invalid,
            chunk_size=chunk_size,
        )
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if report.resumed_chunks:
        typer.echo(f"resumed: {report.resumed_chunks} finished chunks kept")
    typer.echo(report.read.summary())
    typer.echo(f"wrote {report.rows} embeddings to {report.output}")


@app.command()
def info(model: str = typer.Argument(None, help=MODEL_HELP)) -> None:
    """Print a model's formats, dimension, pooling and weight sha256."""
    from .model import load_model

    encoder = load_model(model)
    config = encoder.config
    typer.echo(f"name:       {config.name}")
    typer.echo(f"base:       {type(encoder.base).__name__} ({encoder.base.config.model_type})")
    typer.echo(f"dimension:  {encoder.hidden_size}")
    typer.echo(f"pooling:    {config.pooling}{' + L2 normalisation' if config.normalize else ''}")
    typer.echo(f"max length: {config.max_length}")
    typer.echo(f"formats:    {', '.join(encoder.formats) or 'none (the base serves every format)'}")
    typer.echo(f"sha256:     {config.base_sha256 or 'unknown'}")


@app.command()
def demo(
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    limit: int = typer.Option(None, "--limit", help="Embed only the first N papers."),
    device: str = typer.Option(None, "--device"),
) -> None:
    """Embed real ACL papers and print nearest neighbours of three of them."""
    from .demo import run_demo
    from .model import load_model

    typer.echo(run_demo(load_model(model), limit=limit, device=device))


@app.command("mine-triplets")
def mine_triplets(
    papers: list[Path] = typer.Option(..., "--papers", help="Papers file(s); first non-empty abstract wins."),
    edges: Path = typer.Option(..., "--edges", help="'citing,cited' lines, SPECTER data.json or S2ORC."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for train/dev.jsonl and report.json."),
    id_field: list[str] = typer.Option(None, "--id-field", help="Id field: once, or once per papers file."),
    per_query: int = typer.Option(5, "--per-query", help="Triplets per query."),
    hard: int = typer.Option(2, "--hard", help="Hard negatives per query (the rest are easy)."),
    seed: int = typer.Option(42, "--seed"),
    dev_fraction: float = typer.Option(0.05, "--dev-fraction", help="Share of queries for dev.jsonl."),
    citing_positive: bool = typer.Option(False, "--citing-positive", help="Citing papers are positives too."),
    max_positives: int = typer.Option(None, "--max-positives", help="Cap on positives per query."),
    easy_pool: str = typer.Option("graph", "--easy-pool", help="Easy negatives from 'graph' or 'papers'."),
    exclude_heldout: bool = typer.Option(
        True, "--exclude-heldout/--no-exclude-heldout", help="Leave out held-out evaluation queries."
    ),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip bad paper records."),
    compress: bool = typer.Option(False, "--gzip", help="Write .jsonl.gz files."),
) -> None:
    """Mine SPECTER-style citation triplets (query, cited paper, negative) for stage-1 training."""
    from .train.mining import MiningConfig, mine_to_files

    try:
        config = MiningConfig(
            triplets_per_query=per_query,
            hard_per_query=hard,
            seed=seed,
            dev_fraction=dev_fraction,
            include_citing_as_positive=citing_positive,
            max_positives_per_query=max_positives,
            easy_pool=easy_pool,
        )
        report = mine_to_files(
            papers,
            edges,
            output,
            config,
            id_fields=id_field or None,
            exclude_heldout=exclude_heldout,
            skip_invalid=skip_invalid,
            compress=compress,
        )
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report.summary())
    typer.echo(f"wrote {report.outputs['train']}, {report.outputs['dev']}, {report.outputs['report']}")


@app.command()
def evaluate(
    model: list[str] = typer.Option(..., "--model", "-m", help="bm25, random, default, minilm, a model folder or hub name (repeat to compare)."),
    tasks: str = typer.Option("lite", "--tasks", "-t", help="'lite' (sciembed-lite, built from ../shared/data) or a scirepeval_tasks.jsonl-style file."),
    task: list[str] = typer.Option(None, "--task", help="Run only this task (repeatable)."),
    output: Path = typer.Option(Path("runs/evaluate"), "--output", "-o", help="Folder for results.json, results.md, results.png."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
    cache_dir: Path = typer.Option(Path(".cache/embeddings"), "--cache-dir", help="Embedding cache (keyed by model fingerprint, format, text)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    n_jobs: int = typer.Option(1, "--n-jobs", help="Parallel jobs of the SVM grid searches."),
    data_root: Path = typer.Option(None, "--data-root", help="Shared data folder for sciembed-lite (default ../shared/data)."),
) -> None:
    """Evaluate models on SciRepEval-format tasks; writes results.json, a markdown table and a PNG chart."""
    from .evaluate.benchmark import markdown_table
    from .evaluate.command import run_evaluate
    from .evaluate.loaders import TaskDataError
    from .evaluate.registry import TaskFileError

    try:
        report = run_evaluate(model, tasks, output, device, task, None if no_cache else cache_dir, batch_size,
                              n_jobs, data_root)
    except (TaskFileError, TaskDataError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(markdown_table(report))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
