"""Tokenising in worker processes: the chunk-memo WordPiece is Python and holds the GIL, so a wide
host tokenises wider with processes (``EncodeOptions(tokenize_workers=N)``); each worker keeps its
own chunk memory. Texts go out and flat int64 ids come back, in the order the groups were given.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

# This worker process's tokenizer, built once by its initializer (one per process, never shared).
_WORKER: dict[str, Any] = {}


def _start_worker(tokenizer_json: str, max_length: int) -> None:
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # the Rust fallback: one thread per worker
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


def _encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    fast = _WORKER["fast"]
    if fast is not None:
        return fast.encode_flat(texts)
    seqs = _WORKER["rust"](texts)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    return np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(lengths.sum())), lengths


class TokenizerPool:
    """``workers`` spawned processes (safe beside CUDA and threads) with the same tokenizer."""

    def __init__(self, tokenizer_json: str, max_length: int, workers: int):
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(tokenizer_json, max_length),
        )

    def __deepcopy__(self, memo: dict) -> TokenizerPool:
        return self  # a copied model shares the processes

    def encode_groups(self, items: Iterable[tuple[Any, list[str]]]) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """``(key, flat ids, lengths)`` per ``(key, texts)``, in order, up to two groups per worker ahead."""
        pending: deque[tuple[Any, Future]] = deque()
        try:
            for key, texts in items:
                pending.append((key, self.executor.submit(_encode, texts)))
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
        self.executor.shutdown(wait=True, cancel_futures=True)
