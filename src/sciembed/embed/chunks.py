"""The embedding job's loop: encode each unfinished chunk and write its part, with the GPU kept busy.

The next chunk is read on a thread (the caller's ``chunks``) and each finished chunk's part is
written on another (Parquet + fsync) while the model encodes the next one. (Two encodes in flight
on CUDA were measured too and gave nothing: docs/PERFORMANCE.md, "The embedding job".)
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..data import Paper
from .writer import ResumableParquetWriter


def encode_chunks(
    model: Any,
    writer: ResumableParquetWriter,
    chunks: Iterator[list[Paper]],
    fmt: str,
    options: Any,
    progress: Any,
) -> int:
    """Encode and write every chunk that ``writer`` has not finished; returns the last chunk's index
    (-1: no chunk). One write is in flight at a time; its error stops the job before the next one.
    An error anywhere lets the write in flight finish, so every chunk encoded before the error is
    kept for the rerun (a part is complete or absent: the writer renames it into place)."""
    index = -1
    with ThreadPoolExecutor(1, thread_name_prefix="sciembed-write") as writes:
        pending: Future | None = None
        for index, chunk in enumerate(chunks):
            ids = [p.paper_id for p in chunk]
            if not writer.is_done(index, ids):
                vectors = model.encode(chunk, format=fmt, options=options)
                if pending is not None:
                    pending.result()
                pending = writes.submit(writer.write_chunk, index, ids, vectors)
            progress.update(len(chunk))
        if pending is not None:
            pending.result()
    return index
