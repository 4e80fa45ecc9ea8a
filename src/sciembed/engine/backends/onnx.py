"""The ONNX backend: exported graphs (adapter inside) run by onnxruntime sessions."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ...model.text import pad_ids
from ..options import EncodeOptions

# A call of at least this many batches per core runs one batch per core at a time, each on a
# one-thread session (streams), instead of every batch on one session using all cores: no hand-off
# between threads inside each operator, every core on its own batch (2 cores, shipped int8 graph:
# ~11 % more documents per CPU-second, the same vectors). Smaller calls keep every core on one batch.
STREAM_MIN_BATCHES = 4


class OnnxRunner:
    pipeline_default = False  # onnxruntime already uses every core for each batch
    default_max_tokens = None
    streamable = True  # may run batches on several one-thread sessions at once

    def __init__(self, encoder, adapter: str | None, batch_size: int = 32):
        self.encoder = encoder
        self.adapter = adapter
        self.batch_size = batch_size
        self.session = self.open(encoder, adapter)
        self.out: np.ndarray | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.pending: deque[Future] = deque()

    def open(self, encoder, adapter: str | None):
        return encoder.session(adapter)

    def prepare(self, seqs: Sequence[np.ndarray], rows: Sequence[int]) -> tuple[dict[str, np.ndarray], list[int]]:
        input_ids, mask = pad_ids(seqs, self.encoder.pad_id)
        return {"input_ids": input_ids, "attention_mask": mask}, list(rows)

    def begin(self, count: int) -> None:
        self.out = np.zeros((count, self.encoder.dimension), dtype=np.float32)
        streams = int(getattr(self.encoder, "threads", 1) or 1)
        if self.streamable and streams > 1 and count >= STREAM_MIN_BATCHES * streams * self.batch_size:
            self.streams = streams
            self.stream_session = self.encoder.session(self.adapter, threads=1)
            self.pool = ThreadPoolExecutor(streams, thread_name_prefix="sciembed-onnx")

    def infer(self, session, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(["embedding"], inputs)[0]

    def _run_on(self, session, batch: tuple[dict[str, np.ndarray], list[int]]) -> None:
        inputs, rows = batch
        self.out[rows] = self.infer(session, inputs)  # disjoint rows per batch

    def run(self, batch: tuple[dict[str, np.ndarray], list[int]]) -> int:
        if self.pool is None:
            self._run_on(self.session, batch)
            return len(batch[1])
        while len(self.pending) >= self.streams:  # one batch in flight per stream; errors surface here
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self._run_on, self.stream_session, batch))
        return len(batch[1])

    def finish(self) -> np.ndarray:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = None
        return self.out


def runner(encoder, adapter: str | None, options: EncodeOptions) -> OnnxRunner:
    return OnnxRunner(encoder, adapter, options.batch_size)
