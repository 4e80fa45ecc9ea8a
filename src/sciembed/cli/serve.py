"""`sciembed serve`: the S2-compatible API and the search page over an index."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import _fail, app


def _parse_keys(values: list[str], keys_file: Path | None) -> dict[str, float | None]:
    """``KEY`` or ``KEY:RATE`` (requests/s for that key), from options and/or a file (one per line)."""
    entries = list(values or [])
    if keys_file is not None:
        entries += [
            line.strip() for line in keys_file.read_text().splitlines() if line.strip() and not line.startswith("#")
        ]
    keys: dict[str, float | None] = {}
    for entry in entries:
        key, sep, rate = entry.rpartition(":") if ":" in entry else (entry, "", "")
        try:
            keys[key if sep else entry] = float(rate) if sep else None
        except ValueError:
            raise ValueError(f"API key entry {entry!r}: the part after ':' must be requests per second") from None
    return keys


@app.command()
def serve(
    index_folder: Path = typer.Argument(..., help="An index folder made by `sciembed index build`."),
    model: str = typer.Option(None, "--model", "-m", help="Model (default: the one the index records)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    api_key: list[str] = typer.Option(None, "--api-key", help="Require x-api-key: KEY or KEY:REQUESTS_PER_S (repeat)."),
    api_keys_file: Path = typer.Option(None, "--api-keys-file", help="File with one KEY or KEY:RATE per line."),
    rate_limit: float = typer.Option(None, "--rate-limit", help="Requests/s per key (or per client address)."),
    device: str = typer.Option("cpu", "--device", help="Device for query embedding."),
) -> None:
    """Serve paper lookup, search, recommendations, /embed and the search page."""
    try:
        import uvicorn

        from ..model import load_model
        from ..serve.app import ServeConfig, create_app
        from ..serve.guard import GuardConfig
        from ..serve.index import PaperIndex
    except ImportError as exc:
        _fail(ValueError(f"{exc}; install the serve extra: pip install 'sciembed[serve]'"))
    try:
        keys = _parse_keys(api_key, api_keys_file)
        index = PaperIndex.open(index_folder)
        encoder = load_model(model or index.model.source)
        config = ServeConfig(guard=GuardConfig(api_keys=keys, rate_limit=rate_limit))
        application = create_app(index, encoder, config, device=device)
    except (ValueError, FileNotFoundError, OSError) as exc:
        _fail(exc)
    typer.echo(f"serving {len(index)} papers from {index_folder} at http://{host}:{port}/")
    uvicorn.run(application, host=host, port=port, log_level="warning")
