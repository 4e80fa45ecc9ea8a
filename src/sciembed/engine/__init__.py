"""The inference engine: moves documents through a model (batching, tokenisation, threads, transfer).

A model computes; the engine decides how documents reach it, configured by :class:`EncodeOptions`;
backends (:mod:`sciembed.engine.backends`) only run batches of token ids.
"""

from .batching import length_sorted_batches  # noqa: I001  (options first: the model imports it)
from .options import PROGRESS_MIN_DOCS, EncodeOptions, resolve_options
from .run import EncodeResult, run_encode


def encode(encoder, papers, format="proximity", options: EncodeOptions | None = None):
    """Vectors of ``papers`` (float32, input order): :func:`run_encode` without the timings."""
    return run_encode(encoder, papers, format, options or EncodeOptions()).vectors


__all__ = [
    "PROGRESS_MIN_DOCS",
    "EncodeOptions",
    "EncodeResult",
    "encode",
    "length_sorted_batches",
    "resolve_options",
    "run_encode",
]
