"""`sciembed embed`, `info` and `demo`: papers in, vectors out."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import BACKEND_HELP, DEVICE_HELP, MODEL_HELP, _echo_json, _fail, _refuse_dash, app, check_device


@app.command()
def embed(
    ctx: typer.Context,
    input: Path = typer.Argument(
        ..., help="Papers: JSON lines (.jsonl, .jsonl.gz), a JSON array, or Parquet; with --ray a glob or folder."
    ),
    output: Path = typer.Argument(..., help="Parquet file to write (paper_id, embedding); with --ray a folder."),
    ray_address: str = typer.Argument(
        None, metavar="[ADDRESS]", help="With --ray: the Ray cluster (default: RAY_ADDRESS, else a new local one)."
    ),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    format: str = typer.Option(
        "proximity",
        "--format",
        "-f",
        help="proximity, classification, regression, adhoc_query or [PRX]/[CLF]/[RGN]/[QRY].",
    ),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1),
    device: str = typer.Option(None, "--device", help=DEVICE_HELP, callback=check_device),
    dtype: str = typer.Option(None, "--dtype", help="fp32, bf16 or fp16 (default: fp32 on CPU, fp16 on GPU)."),
    id_field: str = typer.Option(None, "--id-field", help="Id field (default: paper_id, corpus_id, doc_id or id)."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Skip bad records and report them instead of stopping."
    ),
    chunk_size: int = typer.Option(10_000, "--chunk-size", min=1, help="Papers per written (and resumable) chunk."),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
    limit: int = typer.Option(None, "--limit", min=1, help="Embed only the first N valid papers."),
    compile: bool = typer.Option(
        None,
        "--compile/--no-compile",
        help="GPU: torch.compile the packed forward (12-28 s once; default: automatic, for jobs of 2M papers or more).",
        show_default=False,
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary; errors only."),
    ray: bool = typer.Option(
        False, "--ray", help="Many shards on a Ray cluster: INPUT is a glob, OUTPUT a folder of Parquet shards."
    ),
    workers: int = typer.Option(None, "--workers", help="With --ray: model workers (default: one per GPU, or CPUs)."),
    cpus_per_worker: float = typer.Option(
        None, "--cpus-per-worker", help="With --ray: CPUs (threads) per worker (default: 1; GPU workers: CPUs / GPUs)."
    ),
    readers: int = typer.Option(2, "--readers", help="With --ray: concurrent shard readers."),
) -> None:
    """Embed a file of papers into Parquet; rerun the same command to resume a killed job.

    With --ray (`sciembed embed 'shards/*.jsonl.gz' OUT_DIR --ray [ADDRESS]`): every shard on a Ray
    cluster, one model worker per GPU, into OUT_DIR/data/*.parquet and OUT_DIR/manifest.json.
    """
    shared = dict(
        format=format,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        id_field=id_field,
        skip_invalid=skip_invalid,
        chunk_size=chunk_size,
    )
    if ray:
        from .scale import embed_on_ray

        if limit is not None:
            _fail(ValueError("--limit applies to single-file embedding only"))
        embed_on_ray(
            ctx,
            str(input),
            output,
            ray_address,
            model=model,
            **shared,
            backend=backend,
            compile=bool(compile),  # a Ray job compiles only when asked
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            readers=readers,
        )
        return
    if ray_address is not None:
        _fail(ValueError(f"unexpected argument {ray_address!r} (an ADDRESS needs --ray)"))
    from ..data.readers import check_input_path
    from ..embed import embed_file
    from ..embed.writer import check_output_path
    from ..engine import EncodeOptions
    from ..model import load_model

    _refuse_dash(input, "INPUT")
    _refuse_dash(output, "OUTPUT")
    try:
        if compile and backend != "torch":
            raise ValueError("--compile applies to the torch backend only")
        check_output_path(output, [check_input_path(input)])  # before the model loads
        encoder = load_model(model, backend=backend)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    try:
        report = embed_file(
            encoder,
            input,
            output,
            **shared,
            limit=limit,
            options=EncodeOptions(compile=compile),
            show_progress=not (quiet or json_output),
        )
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    if json_output:
        _echo_json(report.to_json())
        return
    if quiet:
        return
    for line in report.lines():
        typer.echo(line)


@app.command()
def info(
    model: str = typer.Argument(None, help=f"{MODEL_HELP} Or an embeddings .parquet file: what wrote it."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """Print a model's formats, dimension, pooling and weight sha256, or an embeddings file's metadata."""
    from ..model import load_model

    if model is not None and str(model).endswith((".parquet", ".pq")) and Path(model).is_file():
        _file_info(Path(model), json_output)
        return
    _refuse_dash(model, "MODEL")
    try:
        encoder = load_model(model)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    config = encoder.config
    if json_output:
        _echo_json(
            {
                "name": config.name,
                "base": type(encoder.base).__name__,
                "model_type": encoder.base.config.model_type,
                "dimension": encoder.hidden_size,
                "pooling": config.pooling,
                "normalize": config.normalize,
                "max_length": config.max_length,
                "formats": encoder.formats,
                "base_sha256": config.base_sha256,
                "fingerprint": encoder.fingerprint,
            }
        )
        return
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
    limit: int = typer.Option(None, "--limit", min=1, help="Embed only the first N papers."),
    device: str = typer.Option(None, "--device", help=DEVICE_HELP, callback=check_device),
) -> None:
    """Embed real ACL papers and print nearest neighbours of three of them."""
    from ..demo import run_demo
    from ..model import load_model

    typer.echo(run_demo(load_model(model), limit=limit, device=device))


def _file_info(path: Path, json_output: bool) -> None:
    import pyarrow.parquet as pq

    from ..embed.metadata import read_metadata

    try:
        metadata = read_metadata(path)
        rows = pq.ParquetFile(path).metadata.num_rows
    except (ValueError, OSError) as exc:
        _fail(exc)
    data = {"file": str(path), "rows": rows, **(metadata.to_json() if metadata else {})}
    if json_output:
        _echo_json(data)
        return
    if metadata is None:
        typer.echo(f"{path}: {rows} rows, no sciembed metadata (written by another tool or an older sciembed)")
        return
    for key, value in data.items():
        typer.echo(f"{key + ':':<18}{value}")
