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
    workers: int = typer.Option(
        1, "--workers", min=1, help="Worker processes (each answers requests and embeds queries; rate limits split)."
    ),
    fast_path: bool = typer.Option(
        True, "--fast-path/--no-fast-path", help="Answer search and lookups without FastAPI's routing (same answers)."
    ),
) -> None:
    """Serve paper lookup, search, recommendations, /embed and the search page."""
    try:
        import uvicorn  # noqa: F401  (the serve extra)

        from ..model import load_model
        from ..serve.index import PaperIndex
        from ..serve.workers import ServeSpec, build_app, run
    except ImportError as exc:
        _fail(ValueError(f"{exc}; install the serve extra: pip install 'sciembed[serve]'"))
    try:
        keys = _parse_keys(api_key, api_keys_file)
        spec = ServeSpec(str(index_folder), model, keys, rate_limit, device, workers, fast_path)
        application = None
        if workers == 1:
            application = build_app(spec)
            count = len(application.state.index)
        else:  # check the index and the model here, for a one-line error instead of N failing workers
            with PaperIndex.open(index_folder) as index:
                count = len(index)
                encoder = load_model(model or index.model.source)
                if encoder.fingerprint != index.model.fingerprint:
                    raise ValueError(
                        f"model {encoder.name} is not the model the index in {index_folder} was built with "
                        f"({index.model.name})"
                    )
            del encoder
    except (ValueError, FileNotFoundError, OSError) as exc:
        _fail(exc)
    typer.echo(f"serving {count} papers from {index_folder} at http://{host}:{port}/ ({workers} worker(s))")
    run(spec, host, port, application if workers == 1 else None)
