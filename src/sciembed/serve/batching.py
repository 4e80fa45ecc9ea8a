"""Query and paper embedding for the API: concurrent requests are encoded together in small batches.

One worker thread owns the encoder, so requests never run the model concurrently (which would only
oversubscribe the cores); under load, requests that arrive while a batch runs form the next batch, and
the first request of a batch waits up to ``window_s`` for others (micro-batching: one forward for many
queries costs little more than one for a single query).
A small LRU cache answers repeated queries without the model.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

import numpy as np

MAX_BATCH = 32
CACHE_SIZE = 2048
WINDOW_S = 0.002


class BatchingEncoder:
    def __init__(
        self,
        encoder: Any,
        max_batch: int = MAX_BATCH,
        cache_size: int = CACHE_SIZE,
        device: str = "cpu",
        window_s: float = WINDOW_S,
    ):
        self.encoder = encoder
        self.window_s = window_s
        self.max_batch = max_batch
        self.cache_size = cache_size
        self.device = device
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="sciembed-encoder", daemon=True)
        self._worker.start()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    def cached(self, item: str | dict, format: str) -> np.ndarray | None:
        """The cached vector of a query string, or None (the fast path of a repeated query: no future)."""
        if not isinstance(item, str):
            return None
        with self._cache_lock:
            hit = self._cache.get((format, item))
            if hit is not None:
                self._cache.move_to_end((format, item))
        return hit

    def submit(self, item: str | dict, format: str) -> Future:
        """A future of one float32 vector; strings are cached (queries repeat), papers are not."""
        future: Future = Future()
        key = (format, item) if isinstance(item, str) else None
        if key is not None:
            with self._cache_lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    future.set_result(hit)
                    return future
        self._queue.put((format, item, key, future))
        return future

    def _remember(self, key: tuple[str, str], vector: np.ndarray) -> None:
        with self._cache_lock:
            self._cache[key] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    wait = deadline - time.monotonic()
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            for fmt in dict.fromkeys(b[0] for b in batch):
                group = [b for b in batch if b[0] == fmt]
                try:
                    vectors = self.encoder.encode(
                        [b[1] for b in group],
                        format=fmt,
                        batch_size=len(group),
                        device=self.device,
                        show_progress=False,
                    )
                except Exception as exc:  # delivered to each waiting request
                    for _, _, _, future in group:
                        future.set_exception(exc)
                    continue
                for (_, _, key, future), vector in zip(group, vectors, strict=True):
                    vector = np.asarray(vector, dtype=np.float32)
                    if key is not None:
                        self._remember(key, vector)
                    future.set_result(vector)
