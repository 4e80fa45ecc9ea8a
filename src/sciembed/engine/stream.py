"""Encoding a stream of chunks (an embedding job's) through one pipeline, across chunk boundaries.

One ``encode`` call per chunk fills and drains the host pipeline (the tokeniser processes' queue,
the prepared batches) at every chunk: on the H200, calls of 10,000 new papers ran at 13,900 docs/s
against 29,200 for one call over the same papers (docs/PERFORMANCE.md, "The embedding job"). Here
the host side tokenises and packs the next chunk while the device finishes this one, and each
chunk's vectors come out once its last batch is done. Every chunk is cut into the same groups and
batches as a call of its own would cut it, so the vectors are the same bits.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..data import Paper, as_item_list
from .backends import runner_for
from .options import EncodeOptions
from .run import (
    Marker,
    call_jobs,
    inference_mode_for,
    is_fp16_torch,
    is_torch,
    plan_batches,
    prepare_jobs,
    rerun_in_bf16,
    run_encode,
)
from .threads import ahead


@dataclass(frozen=True)
class _ChunkStart(Marker):
    count: int


@dataclass(frozen=True)
class _ChunkEnd(Marker):
    key: Any


@dataclass(frozen=True)
class ChunkTiming:
    """One chunk of a stream: seconds from the previous chunk's end to its own, and of those the
    seconds the device side waited for the host to hand over a batch."""

    seconds: float
    wait_for_batches_s: float


def encode_stream(
    encoder: Any,
    chunks: Iterable[tuple[Any, Sequence[Paper | dict | str]]],
    format: str | None,
    options: EncodeOptions,
    timings: list[ChunkTiming] | None = None,
) -> Iterator[tuple[Any, np.ndarray]]:
    """``(key, vectors)`` per ``(key, papers)`` chunk, in order (float32, the chunk's order).

    The automatic choices (tokeniser processes, compiling) are made once, by the size of the first
    chunk that has papers (an empty chunk gives empty vectors: a job's finished chunks). Without
    the pipeline (the CPU default) each chunk is one :func:`run_encode` call.
    ``timings`` (a list) receives a :class:`ChunkTiming` per chunk.
    """
    chunks = iter(chunks)
    begun: list[tuple[Any, Sequence]] = []  # up to the first chunk with papers: the plan's size
    for chunk in chunks:
        begun.append(chunk)
        if len(chunk[1]):
            break
    if not begun:
        return
    chunks = itertools.chain(begun, chunks)
    encoder.place(options.device, options.dtype)
    adapter = encoder.adapter_for_format(format)  # a bad format fails before any thread starts
    documents = len(begun[-1][1])
    if options.compile is None and is_torch(encoder):
        from .backends.torch import auto_compile

        options = replace(options, compile=auto_compile(encoder, options, documents))
    runner = runner_for(encoder, adapter, options)
    plan = plan_batches(runner, documents, options, encoder)
    if not plan.pipelined:
        for key, papers in chunks:
            result = run_encode(encoder, papers, format, options)
            if timings is not None:
                timings.append(ChunkTiming(result.seconds, result.wait_for_batches_s))
            yield key, result.vectors
        return
    in_flight: deque[list] = deque()  # the papers of chunks begun and not yet out, for a bf16 rerun

    def jobs() -> Iterator[Any]:
        for key, papers in chunks:
            papers = as_item_list(papers)
            in_flight.append(papers)
            yield _ChunkStart(len(papers))
            yield from call_jobs(papers, plan.group_size)
            yield _ChunkEnd(key)

    batches = ahead(
        prepare_jobs(encoder, jobs(), runner, plan, options.fields), options.queue_batches, "sciembed-prepare"
    )
    try:
        begun, waited = time.perf_counter(), 0.0
        while True:
            ask = time.perf_counter()
            item = next(batches, None)
            waited += time.perf_counter() - ask
            if item is None:
                return
            with inference_mode_for(encoder):  # this thread only: the host side builds plain tensors
                if isinstance(item, _ChunkStart):
                    runner.begin(item.count)
                elif isinstance(item, _ChunkEnd):
                    vectors = runner.finish()
                else:
                    runner.run(item)
            if not isinstance(item, _ChunkEnd):
                continue
            papers = in_flight.popleft()
            if is_fp16_torch(encoder) and not np.isfinite(vectors).all():
                vectors = rerun_in_bf16(encoder, papers, format, options, time.perf_counter()).vectors
            if timings is not None:
                timings.append(ChunkTiming(time.perf_counter() - begun, waited))
            yield item.key, vectors
            begun, waited = time.perf_counter(), 0.0
    finally:
        batches.close()
