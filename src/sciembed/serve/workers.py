"""`sciembed serve` in one process or as N uvicorn worker processes over the same index.

Python answers one request at a time per process (the GIL), so on a machine with several cores more
worker processes answer more requests. Each worker opens the index read-only: the FAISS file's compact
codes are loaded per process, the unit vectors (re-ranking) and SQLite pages are memory-mapped / cached
by the OS and so shared; each worker also loads the query encoder (its own micro-batching and query
cache) with its share of the cores. Per-key rate limits are enforced per worker, so each worker allows
``rate / workers`` (clients spread over workers by the kernel's accept queue).
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

SPEC_VARIABLE = "SCIEMBED_SERVE_SPEC"  # how the supervisor hands the spec to its worker processes


@dataclass(frozen=True)
class ServeSpec:
    index_folder: str
    model: str | None = None
    api_keys: dict[str, float | None] = field(default_factory=dict)
    rate_limit: float | None = None
    device: str = "cpu"
    workers: int = 1
    fast_path: bool = True  # ServeConfig.fast_path

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSpec:
        return cls(**json.loads(text))


def _share(rate: float | None, workers: int) -> float | None:
    return None if rate is None else rate / workers


def build_app(spec: ServeSpec) -> Any:
    """Open the index, load the model and create the FastAPI app (in the calling process)."""
    from ..model import load_model
    from .app import ServeConfig, create_app
    from .guard import GuardConfig
    from .index import PaperIndex

    workers = max(1, int(spec.workers))
    index = PaperIndex.open(spec.index_folder)
    encoder = load_model(spec.model or index.model.source)
    keys = {key: _share(rate, workers) for key, rate in spec.api_keys.items()}
    guard = GuardConfig(api_keys=keys, rate_limit=_share(spec.rate_limit, workers))
    app = create_app(index, encoder, ServeConfig(guard=guard, fast_path=spec.fast_path), device=spec.device)
    # The model, the index and the libraries are ~430k objects that live as long as the process. Python's
    # full (generation-2) collections traverse them all: 100-350 ms each on this machine, a pause of every
    # request in flight (the closed-loop p99). Frozen, the collector no longer looks at them.
    gc.collect()
    gc.freeze()
    return app


def app_from_environment() -> Any:
    """uvicorn's factory in each worker process (``--workers N``)."""
    spec = ServeSpec.from_json(os.environ[SPEC_VARIABLE])
    if spec.workers > 1:
        import torch

        from ..model.host import available_cores

        torch.set_num_threads(max(1, available_cores() // spec.workers))  # the workers share the cores
    return build_app(spec)


def run(spec: ServeSpec, host: str, port: int, app: Any = None) -> None:
    """One process serving ``app`` (or ``build_app(spec)``), or ``spec.workers`` processes that each build it."""
    import uvicorn

    if spec.workers <= 1:
        uvicorn.run(app if app is not None else build_app(spec), host=host, port=port, log_level="warning")
        return
    os.environ[SPEC_VARIABLE] = spec.to_json()
    uvicorn.run(
        "sciembed.serve.workers:app_from_environment",
        factory=True,
        workers=int(spec.workers),
        host=host,
        port=port,
        log_level="warning",
    )
