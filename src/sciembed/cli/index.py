"""`sciembed index build` / `index add` / `index info`: papers (and their embeddings) into a paper index."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import MODEL_HELP, _fail, app

index_app = typer.Typer(no_args_is_help=True, help="Build and grow a paper index for `sciembed serve`.")
app.add_typer(index_app, name="index")

PAPERS_HELP = "Papers: JSON lines (.jsonl, .jsonl.gz), a JSON array, or Parquet."


def _source(model: str | None) -> str:
    """What `sciembed serve` passes to sciembed.load() later: an absolute folder, a name, or the default."""
    if model and Path(model).exists():
        return str(Path(model).resolve())
    return model or "default"


def _run(
    papers: Path,
    embeddings: Path | None,
    out: Path,
    model: str | None,
    formats: list[str],
    kind: str,
    id_field: str | None,
    skip_invalid: bool,
    chunk_size: int,
    batch_size: int,
    device: str | None,
    create: bool,
) -> None:
    from ..data import InvalidRecordError
    from ..data.progress import progress_bar
    from ..model import load_model
    from ..serve.build import ReadOptions, add_file, build_index
    from ..serve.index import PaperIndex

    options = ReadOptions(id_field, skip_invalid, chunk_size, batch_size, device)
    try:
        index = None
        if not create:
            index = PaperIndex.open(out, writable=True)
            model = model or index.model.source
        encoder = load_model(model)
        progress = progress_bar(desc="indexing papers", unit="paper")
        try:
            if create:
                report = build_index(
                    papers, out, encoder, _source(model), embeddings, formats, kind, options, progress.update
                )
            else:
                try:
                    report = add_file(index, encoder, papers, embeddings, options, progress.update)
                finally:
                    index.close()
        finally:
            progress.close()  # before any message: never on the progress bar's line
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, InvalidRecordError) as exc:
        _fail(exc)
    typer.echo(report.summary())


@index_app.command("build")
def build(
    papers: Path = typer.Argument(..., help=PAPERS_HELP),
    targets: list[Path] = typer.Argument(
        ..., help="[EMBEDDINGS.parquet] OUT: optional `sciembed embed` output, then the index folder."
    ),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    formats: list[str] = typer.Option(
        ["proximity"], "--format", "-f", help="Formats to store (repeat); queries use adhoc_query."
    ),
    kind: str = typer.Option("auto", "--kind", help="auto, flat (exact), hnsw, ivfflat, ivfpq or ivfpqfs."),
    id_field: str = typer.Option(None, "--id-field", help="Id field (default: paper_id, corpus_id, doc_id or id)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Skip bad records and report them."),
    chunk_size: int = typer.Option(10_000, "--chunk-size", help="Papers per committed (resumable) step."),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    device: str = typer.Option(None, "--device", help="cpu, cuda ... for papers without given embeddings."),
) -> None:
    """Build an index from papers (embedding them, or taking their vectors from EMBEDDINGS.parquet)."""
    if len(targets) not in (1, 2):
        _fail(ValueError("expected PAPERS [EMBEDDINGS.parquet] OUT"))
    embeddings, out = (targets[0], targets[1]) if len(targets) == 2 else (None, targets[0])
    _run(papers, embeddings, out, model, formats, kind, id_field, skip_invalid, chunk_size, batch_size, device, True)


@index_app.command("add")
def add(
    out: Path = typer.Argument(..., help="An index folder made by `sciembed index build`."),
    papers: Path = typer.Argument(..., help=PAPERS_HELP),
    embeddings: Path = typer.Argument(None, help="Optional `sciembed embed` Parquet of these papers."),
    model: str = typer.Option(None, "--model", "-m", help="Model (default: the one the index records)."),
    id_field: str = typer.Option(None, "--id-field"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid"),
    chunk_size: int = typer.Option(10_000, "--chunk-size"),
    batch_size: int = typer.Option(32, "--batch-size", "-b"),
    device: str = typer.Option(None, "--device"),
) -> None:
    """Add papers to an index: no rebuild, ids already present are skipped, a crash changes nothing."""
    _run(papers, embeddings, out, model, [], "auto", id_field, skip_invalid, chunk_size, batch_size, device, False)


@index_app.command("info")
def info(out: Path = typer.Argument(..., help="An index folder.")) -> None:
    """Print an index's model, formats, kind, size and generation."""
    import json

    from ..serve.layout import read_manifest

    try:
        manifest = read_manifest(out)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(json.dumps(manifest.to_dict(), indent=2))
