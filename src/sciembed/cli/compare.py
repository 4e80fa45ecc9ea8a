"""`sciembed compare`: how far two embeddings of the same papers differ."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import _echo_json, _fail, _refuse_dash, app


@app.command()
def compare(
    a: Path = typer.Argument(..., help="Embeddings file A (Parquet: paper_id, embedding)."),
    b: Path = typer.Argument(..., help="Embeddings file B of (mostly) the same papers."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for compare.md, compare.png, compare.json."),
    k: int = typer.Option(10, "--k", min=1, help="Nearest neighbours per paper for the overlap."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of markdown."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Write the files only; print nothing."),
) -> None:
    """Per-paper cosine after orthogonal alignment, k-NN overlap, a histogram PNG and a markdown summary."""
    from ..embed.compare import compare_files, markdown_summary, write_report

    for path, what in ((a, "A"), (b, "B")):
        _refuse_dash(path, what)
    try:
        result = compare_files(a, b, k=k)
        write_report(result, output, a.name, b.name)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        _fail(exc)
    if quiet:
        return
    if json_output:
        _echo_json(result.summary())
    else:
        typer.echo(markdown_summary(result, a.name, b.name))
