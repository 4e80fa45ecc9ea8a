"""Helpers of the start-up probes (``job_start_probe.py``, ``load_probe.py``): seconds per step of a
fresh process, and a cProfile report as text. (``sciembed.embed.job._Phases`` is the same timer, but
importing it imports torch, the first step these probes time.)"""

from __future__ import annotations

import cProfile
import io
import pstats
import time


class Steps:
    """Seconds from the previous mark (or the creation) to each named mark, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 4)
        self._last = now


def profile_text(profiler: cProfile.Profile, cumulative: int = 60, own: int = 30) -> str:
    """The ``cumulative`` entries of most cumulative time, then the ``own`` entries of most own time."""
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(cumulative)
    stats.sort_stats("tottime").print_stats(own)
    return text.getvalue()
