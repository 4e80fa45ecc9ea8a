"""A GPU job's one-time library start, begun on a thread while the job prepares everything else.

In a fresh process the first forward on CUDA paid ~1 s on the H200 host before any real work
(``benchmarks/job_start_probe.py``): Triton keys its kernel cache by hashing its own installation
(~0.45 s, once per process), imports its compiler's modules on the first launch (~0.15 s), and CUDA
itself starts (~0.35-0.45 s). None of it depends on the model, so a job starts it at once and its
reader, model move and tokeniser processes proceed meanwhile. The kernel run here is a trivial one of
its own: the model's kernels are specialised to its shapes and are still loaded by its first forward.
"""

from __future__ import annotations

import threading
from typing import Any

from .triton_build import lazy_kernel


def _define(triton, tl):
    @triton.jit
    def touch_kernel(x_ptr, BLOCK: tl.constexpr):
        at = tl.arange(0, BLOCK)
        tl.store(x_ptr + at, tl.load(x_ptr + at) + 1)

    return touch_kernel


_touch = lazy_kernel(_define)


def _warm_up(device: Any) -> Any:
    """Start CUDA and launch the trivial kernel on ``device``; returns its tensor (ones where the kernel
    ran, zeros without Triton), None where anything failed."""
    import torch

    try:
        x = torch.zeros(16, device=device)  # CUDA's start
        built = _touch()
        if built is not None:
            built[1][(1,)](x, BLOCK=16)  # Triton's cache key, compiler imports and launcher
        return x
    except Exception:  # a best-effort head start: the job's own first forward reports any real error
        return None


def warm_up_in_background(device: Any) -> threading.Thread | None:
    """Start CUDA and Triton for ``device`` on a daemon thread (returned); None where ``device`` is
    not a CUDA device that is present."""
    import torch

    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return None
    thread = threading.Thread(target=_warm_up, args=(device,), name="sciembed-gpu-warm-up", daemon=True)
    thread.start()
    return thread
