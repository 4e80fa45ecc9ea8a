"""The embedding job's loop: encode each unfinished chunk and write its part, with the GPU kept busy.

The chunks are read ahead (``reading.py``: on a thread, or for large inputs in a process of its
own) and each finished chunk's part is written on another thread (Parquet + fsync, and appended to
the output in progress) while the model encodes the next one. A model of the engine encodes the chunks as one stream
(:func:`~sciembed.engine.stream.encode_stream`): its host side tokenises and packs the next chunk
while the device finishes this one, in the batches a call per chunk would use. Any other encoder
gets one ``encode`` call per chunk. (Two encodes in flight on CUDA were measured too and gave
nothing: docs/PERFORMANCE.md, "The embedding job".)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..engine.stream import encode_stream
from ..model.encoding import EngineEncode
from .writer import ResumableParquetWriter

# Chunk texts are built by the reader; as items of ``encode`` a string is a paper whose title is
# that text, so the model takes them as they are.
TEXT_AS_IS = ("title",)


def encode_chunks(
    model: Any,
    writer: ResumableParquetWriter,
    chunks: Iterable[tuple[list[str], list[str]]],
    fmt: str,
    options: Any,
    progress: Any,
) -> int:
    """Encode and write every ``(ids, texts)`` chunk that ``writer`` has not finished; returns the
    last chunk's index (-1: no chunk). One write is in flight at a time; its error stops the job
    before the next one. An error anywhere lets the write in flight finish, so every chunk encoded
    before the error is kept for the rerun (a part is complete or absent: the writer renames it
    into place)."""

    def keyed() -> Iterator[tuple[tuple[int, list[str], bool], list[str]]]:
        for index, (ids, texts) in enumerate(chunks):
            done = writer.is_done(index, ids)
            yield (index, ids, done), ([] if done else texts)

    index = -1
    with ThreadPoolExecutor(1, thread_name_prefix="sciembed-write") as writes:
        pending: Future | None = None
        for (index, ids, done), vectors in _encoded(model, keyed(), fmt, options.but(fields=TEXT_AS_IS)):
            if pending is not None:
                pending.result()
            # In order, finished or not: the writer appends each chunk to the output in progress.
            pending = (
                writes.submit(writer.keep_chunk, index)
                if done
                else writes.submit(writer.write_chunk, index, ids, vectors)
            )
            progress.update(len(ids))
        if pending is not None:
            pending.result()
    return index


def _encoded(model: Any, chunks: Iterator[tuple[Any, list[str]]], fmt: str, options: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(model, EngineEncode):
        yield from encode_stream(model, chunks, fmt, options)
        return
    for key, texts in chunks:  # finished chunks (no texts) are not encoded again
        yield (
            key,
            model.encode(texts, format=fmt, options=options) if texts else np.zeros((0, model.dimension), np.float32),
        )
