"""Tokenising in worker processes: the chunk-memo WordPiece is Python and holds the GIL, so a wide
host tokenises wider with processes; each worker keeps its own chunk memory. Papers go out (each
worker also builds their texts, the other pure-Python step of the host side) and flat int64 ids come
back, in the order the groups were given. The launching process is left with only the GIL work that
must be its own: batching, packing and launching kernels.
"""

from __future__ import annotations

import ast
import functools
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

# This worker process's tokenizer, built once by its initializer (one per process, never shared).
_WORKER: dict[str, Any] = {}


def _start_worker(tokenizer_json: str, max_length: int, rust_threads: int, started: Any) -> None:
    # The Rust fallback (texts the chunk memo has not seen yet: most of them while it is cold) gets
    # this worker's share of the cores.
    os.environ.setdefault("RAYON_NUM_THREADS", str(rust_threads))
    from tokenizers import Tokenizer

    from ..model.wordpiece import fast_wordpiece

    backend = Tokenizer.from_str(tokenizer_json)
    backend.no_padding()
    backend.enable_truncation(max_length)
    encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch

    def rust_ids(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in encode(texts, add_special_tokens=True)]

    _WORKER["fast"] = fast_wordpiece(tokenizer_json, max_length, rust_ids)
    _WORKER["rust"] = rust_ids
    started.wait(timeout=300)  # every worker is up before any answers: ``ready`` then means all of them


def _started() -> int:
    return os.getpid()


def _encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    fast = _WORKER["fast"]
    if fast is not None:
        return fast.encode_flat(texts)
    seqs = _WORKER["rust"](texts)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    return np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(lengths.sum())), lengths


def _encode_papers(
    papers: list[Any], first: int, separator: str, fields: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Texts of ``papers`` (items ``first``, ``first + 1``, ... of the call: error messages name them), then ids."""
    from ..data import as_paper

    return _encode([as_paper(p, first + i).text(separator, fields) for i, p in enumerate(papers)])


class TokenizerPool:
    """``workers`` spawned processes (safe beside CUDA and threads) with the same tokenizer.

    The processes start in the background (a spawned worker imports the package, seconds); ``ready``
    says whether all of them answer, so a caller that must not wait can tokenise in process meanwhile.
    """

    def __init__(self, tokenizer_json: str, max_length: int, workers: int, cores: int | None = None):
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        rust_threads = max(1, (cores or os.cpu_count() or 1) // workers)
        self.executor = ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(tokenizer_json, max_length, rust_threads, context.Barrier(workers)),
        )
        # One call per worker: the pool spawns a process per call while none is idle, so all start.
        # Spawning is synchronous (~0.5 s a process on the H200 host), so it runs on a thread: the
        # caller goes on tokenising in process meanwhile instead of waiting for 4-8 spawns.
        self._started: list[Future] = []
        self._starter = threading.Thread(target=self._start_all, name="sciembed-tokenizer-spawn", daemon=True)
        self._starter.start()

    def _start_all(self) -> None:
        self._started = [self.executor.submit(_started) for _ in range(self.workers)]

    def __deepcopy__(self, memo: dict) -> TokenizerPool:
        return self  # a copied model shares the processes

    @property
    def ready(self) -> bool:
        """All workers run (False for a pool that failed to start: callers then tokenise in process)."""
        if self._starter.is_alive():
            return False
        return len(self._started) == self.workers and all(f.done() and f.exception() is None for f in self._started)

    def encode_groups(self, items: Iterable[tuple[Any, list[str]]]) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """``(key, flat ids, lengths)`` per ``(key, texts)``, in order."""
        return self._in_order((key, (_encode, texts)) for key, texts in items)

    def encode_paper_groups(
        self, papers: Sequence[Any], ranges: Iterable[range], separator: str, fields: tuple[str, ...]
    ) -> Iterator[tuple[range, np.ndarray, np.ndarray]]:
        """``(range, flat ids, lengths)`` per range of ``papers``, texts built in the workers, in order."""
        calls = ((g, (_encode_papers, list(papers[g.start : g.stop]), g.start, separator, fields)) for g in ranges)
        return self._in_order(calls)

    def _in_order(self, calls: Iterable[tuple[Any, tuple]]) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """Results of ``(key, (function, *args))`` calls, in order, up to two calls per worker ahead."""
        pending: deque[tuple[Any, Future]] = deque()
        try:
            for key, (function, *args) in calls:
                pending.append((key, self.executor.submit(function, *args)))
                if len(pending) >= 2 * self.workers:
                    key, future = pending.popleft()
                    yield (key, *future.result())
            while pending:
                key, future = pending.popleft()
                yield (key, *future.result())
        finally:
            for _, future in pending:
                future.cancel()

    def close(self) -> None:
        self._starter.join()
        self.executor.shutdown(wait=True, cancel_futures=True)


@functools.cache
def shared_pool(tokenizer_json: str, max_length: int, workers: int) -> TokenizerPool:
    """One pool per tokenizer, length limit and width in this process, whichever model asks (several
    models with one tokenizer, e.g. copies in other dtypes, share its processes and warm memos)."""
    return TokenizerPool(tokenizer_json, max_length, workers)


def main_is_safe_to_spawn() -> bool:
    """Whether spawned processes may start without the caller asking: a spawned child re-imports the
    main script, so that script must keep its work under ``if __name__ == "__main__":`` (console
    scripts such as ``sciembed`` do; an interactive session or ``python -c`` has no script)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        return True
    return _has_main_guard(os.path.abspath(path))


@functools.cache
def _has_main_guard(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [n for n in ast.walk(node.test) if isinstance(n, ast.Name) and n.id == "__name__"]
            strings = [n for n in ast.walk(node.test) if isinstance(n, ast.Constant) and n.value == "__main__"]
            if names and strings:
                return True
    return False
