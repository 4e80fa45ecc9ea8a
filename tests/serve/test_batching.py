"""The API's query encoder: concurrent requests share one forward (micro-batching), repeats hit the cache."""

from __future__ import annotations

import threading

import numpy as np

from sciembed.serve.batching import BatchingEncoder


class RecordingEncoder:
    """Vector = [len(text), format index]; remembers the size of every batch it was given."""

    def __init__(self):
        self.batches: list[int] = []

    def encode(self, items, format, batch_size, device, show_progress):
        self.batches.append(len(items))
        return np.asarray([[len(str(i)), ("adhoc_query", "proximity").index(format)] for i in items], np.float32)


def test_concurrent_queries_are_encoded_in_one_batch_in_order_and_cached():
    encoder = RecordingEncoder()
    batcher = BatchingEncoder(encoder, window_s=0.5)  # a long window: all 12 arrive inside it
    try:
        texts = [f"query {'x' * i}" for i in range(12)]
        futures = [None] * len(texts)
        start = threading.Barrier(len(texts))

        def submit(i):
            start.wait()
            futures[i] = batcher.submit(texts[i], "adhoc_query")

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        vectors = [f.result(timeout=10) for f in futures]
        assert [v[0] for v in vectors] == [len(t) for t in texts]  # each request gets its own vector
        assert encoder.batches == [12]
        again = batcher.submit(texts[3], "adhoc_query")
        assert again.done() and again.result()[0] == len(texts[3]) and encoder.batches == [12]
        paper = batcher.submit({"paper_id": "p", "title": "t"}, "proximity").result(timeout=10)
        assert paper[1] == 1 and encoder.batches == [12, 1]  # papers are not cached, formats not mixed
    finally:
        batcher.close()


def test_a_failing_encode_reaches_every_waiting_request():
    class Broken(RecordingEncoder):
        def encode(self, *args, **kwargs):
            raise RuntimeError("out of memory")

    batcher = BatchingEncoder(Broken(), window_s=0.0)
    try:
        future = batcher.submit("a query", "adhoc_query")
        try:
            future.result(timeout=10)
        except RuntimeError as exc:
            assert "out of memory" in str(exc)
        else:
            raise AssertionError("the error was swallowed")
    finally:
        batcher.close()
