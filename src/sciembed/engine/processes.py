"""Tokenising in worker processes: the chunk-memo WordPiece is Python and holds the GIL, so a wide
host tokenises wider with processes; each worker keeps its own chunk memory. Papers go out (each
worker also builds their texts, the other pure-Python step of the host side) and flat int64 ids come
back, in the order the groups were given. The launching process is left with only the GIL work that
must be its own: batching, packing and launching kernels.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import multiprocessing
import os
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

# This worker process's tokenizer, built once by its initializer (one per process, never shared).
_WORKER: dict[str, Any] = {}


def exit_with_parent() -> None:
    """End this spawned process when the one that started it ends, even by SIGKILL (no clean-up runs
    there, and a worker blocked on its queue would wait for ever: it holds both ends of the pipe)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_after, args=(parent,), name="sciembed-parent-watch", daemon=True).start()


def _exit_after(parent: Any) -> None:
    parent.join()
    os._exit(1)


def _start_worker(tokenizer_path: str, max_length: int, rust_threads: int, started: Any) -> None:
    exit_with_parent()
    # The Rust fallback (texts the chunk memo has not seen yet: most of them while it is cold) gets
    # this worker's share of the cores.
    os.environ.setdefault("RAYON_NUM_THREADS", str(rust_threads))
    from tokenizers import Tokenizer

    from ..model.wordpiece import fast_wordpiece

    with open(tokenizer_path, encoding="utf-8") as handle:
        tokenizer_json = handle.read()
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

    The processes start in the background (a spawned worker imports the package, about a second);
    ``ready`` says whether all of them answer, so a caller that must not wait can tokenise in process
    meanwhile.
    """

    def __init__(self, tokenizer_json: str, max_length: int, workers: int, cores: int | None = None):
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        rust_threads = max(1, (cores or os.cpu_count() or 1) // workers)
        # The tokenizer goes to the workers as a file: a spawn blocks until the child has read what it
        # is sent, so 0.5 MB of JSON in the start arguments made the spawns sequential (0.15-0.3 s
        # each, docs/PERFORMANCE.md); a path lets all of them start at once. Removed once all run.
        handle, self._spec_path = tempfile.mkstemp(prefix="sciembed-tokenizer-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(tokenizer_json)
        self.executor = ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self._spec_path, max_length, rust_threads, context.Barrier(workers)),
        )
        # One call per worker: the pool spawns a process per call while none is idle, so all start.
        # On a thread, so that the caller goes on tokenising in process meanwhile.
        self._started: list[Future] = []
        self._starter = threading.Thread(target=self._start_all, name="sciembed-tokenizer-spawn", daemon=True)
        self._starter.start()

    def _start_all(self) -> None:
        try:
            self._started = [self.executor.submit(_started) for _ in range(self.workers)]
            for future in self._started:
                future.exception()  # waits: every worker has read the file (or failed)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self._spec_path)

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
        return ((key, *ids) for key, ids in self._in_order((key, (_encode, texts)) for key, texts in items))

    def encode_paper_jobs(
        self, jobs: Iterable[Any], separator: str, fields: tuple[str, ...], passes: type = type(None)
    ) -> Iterator[Any]:
        """``(rows, flat ids, lengths)`` per ``(rows, papers)`` job, texts built in the workers, in order;
        a job of type ``passes`` comes out as it went in, in its place."""
        calls = (
            (job, None)
            if isinstance(job, passes)
            else (job[0], (_encode_papers, list(job[1]), job[0].start, separator, fields))
            for job in jobs
        )
        return (key if ids is None else (key, *ids) for key, ids in self._in_order(calls))

    def _in_order(self, calls: Iterable[tuple[Any, tuple | None]]) -> Iterator[tuple[Any, Any]]:
        """``(key, result)`` of ``(key, (function, *args))`` calls, in order, up to two calls per worker
        ahead; a call None has the result None and takes no worker."""
        pending: deque[tuple[Any, Future]] = deque()
        try:
            for key, call in calls:
                if call is None:
                    future: Future = Future()
                    future.set_result(None)
                else:
                    future = self.executor.submit(*call)
                pending.append((key, future))
                if len(pending) >= 2 * self.workers:
                    key, future = pending.popleft()
                    yield key, future.result()
            while pending:
                key, future = pending.popleft()
                yield key, future.result()
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
