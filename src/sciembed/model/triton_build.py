"""Triton kernels built on first use, and only where Triton is installed (it is an optional
dependency: CUDA machines have it with torch, CPU-only installs usually do not)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def lazy_kernel(define: Callable[[Any, Any], Any]) -> Callable[[], tuple[Any, Any] | None]:
    """``define(triton, tl) -> kernel`` wrapped into a cached function returning ``(triton, kernel)``,
    or None when Triton cannot be imported."""

    @functools.cache
    def build() -> tuple[Any, Any] | None:
        try:
            import triton
            import triton.language as tl
        except ImportError:
            return None
        return triton, define(triton, tl)

    return build
