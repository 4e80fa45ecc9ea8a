"""The inference engine: moves documents through a model (batching, tokenisation, threads, transfer).

A model computes; the engine decides how documents reach it, configured by :class:`EncodeOptions`.
"""

from .options import PROGRESS_MIN_DOCS, EncodeOptions, resolve_options

__all__ = ["PROGRESS_MIN_DOCS", "EncodeOptions", "resolve_options"]
