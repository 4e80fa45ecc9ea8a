"""The embedding job's loop: encode each unfinished chunk and write its part, with the GPU kept busy.

Three things overlap: the next chunk is read on a thread (the caller's ``chunks``), each finished
chunk's part is written on another (Parquet + fsync), and on CUDA two chunks are encoded at once, so
that one chunk's start (its first groups tokenised before any batch reaches the GPU) and end (the
last batches, the copy to the host) run under the other's GPU work instead of leaving the GPU idle
10 times per 100,000 papers. Each chunk is still one ``encode`` call with its own batches, so its
vectors are the same bits as alone; parts are written in chunk order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..data import Paper
from .writer import ResumableParquetWriter

# Encodes in flight on CUDA; on the CPU one (a second call would only share the same cores).
CUDA_CONCURRENT_ENCODES = 2


def concurrent_encodes(model: Any) -> int:
    """How many chunks the job encodes at once with ``model`` (placed): 2 on CUDA, else 1."""
    device = getattr(model, "device", None)
    return CUDA_CONCURRENT_ENCODES if getattr(device, "type", None) == "cuda" else 1


def encode_chunks(
    model: Any,
    writer: ResumableParquetWriter,
    chunks: Iterator[list[Paper]],
    fmt: str,
    options: Any,
    progress: Any,
    concurrent: int = 1,
) -> int:
    """Encode and write every chunk that ``writer`` has not finished; returns the last chunk's index
    (-1: no chunk). At most ``concurrent`` encodes and one write are in flight. An error (a bad
    record from ``chunks``, a failed encode or write) still writes the chunks encoded before it, in
    order, so that a rerun resumes after them; then it is raised."""
    index = -1
    in_flight: deque[tuple[int, list[str], int, Future]] = deque()
    encodes = ThreadPoolExecutor(concurrent, thread_name_prefix="sciembed-encode")
    writes = ThreadPoolExecutor(1, thread_name_prefix="sciembed-write")
    with encodes, writes:
        written: list[Future] = []

        def write_oldest() -> None:
            done_index, ids, size, future = in_flight[0]
            vectors = future.result()  # a failed encode stays first in line: nothing after it is written
            in_flight.popleft()
            if written:
                written.pop().result()  # one write at a time: its error stops the job here
            written.append(writes.submit(writer.write_chunk, done_index, ids, vectors))
            progress.update(size)

        try:
            for index, chunk in enumerate(chunks):
                ids = [p.paper_id for p in chunk]
                if writer.is_done(index, ids):
                    progress.update(len(chunk))
                    continue
                future = encodes.submit(model.encode, chunk, format=fmt, options=options)
                in_flight.append((index, ids, len(chunk), future))
                if len(in_flight) >= concurrent:
                    write_oldest()
            while in_flight:
                write_oldest()
        except BaseException:
            _write_what_finished(in_flight, writer, written)
            raise
        for future in written:
            future.result()
    return index


def _write_what_finished(in_flight: deque, writer: ResumableParquetWriter, written: list[Future]) -> None:
    """After an error: the encodes in flight finish; those that succeeded, up to the first that did
    not, are written (in order, so that the parts stay a prefix a rerun can resume after)."""
    for future in written:
        if future.exception() is not None:
            return
    while in_flight:
        done_index, ids, _, future = in_flight.popleft()
        if future.exception() is not None:
            return
        writer.write_chunk(done_index, ids, future.result())
