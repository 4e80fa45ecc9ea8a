"""`sciembed embed ... --ray` (the distributed path of the embed command) and `sciembed scale index`."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import _fail, app, job_runner

scale_app = typer.Typer(no_args_is_help=True, help="Work on sharded embeddings (sciembed embed --ray output).")
app.add_typer(scale_app, name="scale")


def embed_on_ray(
    ctx: typer.Context, input_glob: str, output: Path, address: str | None, model: str | None, **options
) -> None:
    """Run :func:`sciembed.scale.embed_shards` (or the ``embed_shards`` of the root ``obj``, see
    :func:`~sciembed.cli.common.job_runner`) and print its summary; bad input exits with status 2."""
    try:
        import ray.data  # noqa: F401

        from ..scale import ScaleOptions, embed_shards
    except ImportError as exc:
        _fail(ValueError(f"--ray needs Ray Data: pip install 'sciembed[ray]' ({exc})"))
    try:
        run = job_runner(ctx, "embed_shards", embed_shards)
        report = run(input_glob, output, model=model, options=ScaleOptions(**options), address=address)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(report.summary())
    typer.echo(f"wrote {report.output / 'manifest.json'}")


@scale_app.command("index")
def index_command(
    embeddings: Path = typer.Argument(..., help="A finished `sciembed embed --ray` output folder."),
    index: Path = typer.Argument(..., help="Index folder to create, or to resume building (docs/SERVING.md)."),
    kind: str = typer.Option("auto", "--kind", help="auto, flat, hnsw or ivfpq (IVF-PQ trains on a sample)."),
    sample: int = typer.Option(100_000, "--sample", help="IVF-PQ: training vectors, spread over all shards."),
    commit_every: int = typer.Option(1_000_000, "--commit-every", help="Papers between index commits."),
    nlist: int = typer.Option(None, "--nlist", help="IVF-PQ: inverted lists (default from the size)."),
    m: int = typer.Option(None, "--pq-m", help="IVF-PQ: bytes per vector (sub-quantisers)."),
) -> None:
    """Build the serving index from sharded embeddings, shard by shard, and report peak memory."""
    from ..scale.index import build_index

    params = {k: v for k, v in {"nlist": nlist, "m": m}.items() if v is not None} or None
    try:
        report = build_index(embeddings, index, kind=kind, params=params, sample_size=sample, commit_every=commit_every)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        _fail(exc)
    typer.echo(report.summary())
