"""Backends: what runs a batch of token ids into vectors. Everything else is the engine's.

A backend is picked by the encoder's ``backend`` name; adding one is a module with a ``runner``
factory and a line here (and, for a new file format, a loader in :mod:`sciembed.model.backends`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from ..options import EncodeOptions

# backend name -> "module:factory"; factory(encoder, adapter, options) -> BatchRunner
RUNNERS = MappingProxyType(
    {
        "torch": "sciembed.engine.backends.torch:runner",
        "onnx": "sciembed.engine.backends.onnx:runner",
        "openvino": "sciembed.engine.backends.openvino:runner",
    }
)


class BatchRunner(Protocol):
    """One encode call's worker: ``prepare`` runs on the host (maybe on a background thread), ``run``
    on the calling thread; rows of ``prepare`` say where each document's vector goes."""

    pipeline_default: bool  # whether the engine pipelines by default (True on GPUs)
    default_max_tokens: int | None  # the token budget per batch when the call gives none

    def prepare(self, seqs: Sequence[np.ndarray], rows: Sequence[int]) -> Any: ...

    def begin(self, count: int) -> None: ...

    def run(self, batch: Any) -> int: ...  # documents done

    def finish(self) -> np.ndarray: ...


def runner_for(encoder: Any, adapter: str | None, options: EncodeOptions) -> BatchRunner:
    name = getattr(encoder, "backend", "torch")
    if name not in RUNNERS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(RUNNERS)}")
    module, factory = RUNNERS[name].split(":")
    return getattr(import_module(module), factory)(encoder, adapter, options)


__all__ = ["RUNNERS", "BatchRunner", "runner_for"]
