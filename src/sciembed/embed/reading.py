"""The embedding job's input as chunks of ``(ids, texts)``, read on a thread or in a process of its own.

Reading is pure Python (JSON parsing, the records' checks, a text digest per paper for duplicates:
about 30 us a paper) and holds the GIL; on a thread of the job's process it competed with the
threads that pack batches and launch kernels, and halved the GPU job's throughput on the H200
(docs/PERFORMANCE.md, "The embedding job"). In a process of its own it costs the job's process only
the unpickling of the finished strings. Both ways yield the same chunks; the process is used for
large inputs where processes may be spawned.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import queue
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..data import ReadReport, paper_from_dict, read_papers
from ..data.errors import InputFileError, InvalidRecordError
from ..data.readers import BLANK, GZIP_ERRORS, DuplicateCheck, detect_format, jsonl_record, open_input, text_digest
from ..engine.processes import exit_with_parent
from ..engine.threads import ahead

# How many finished chunks the reading process may hold ready (each 10,000 texts: ~15 MB).
CHUNKS_AHEAD = 2
# How long the job waits for the reading process between checks that it still runs.
POLL_S = 1.0
# Lines per parsing task of the reading process's parsing processes.
PARSE_BLOCK_LINES = 2000

TextChunk = tuple[list[str], list[str]]


@dataclass(frozen=True)
class ChunkSource:
    """What to read: the papers of ``path`` (``id_field``, ``skip_invalid`` and ``limit`` as in
    ``embed_file``) in chunks of ``chunk_size``, each paper's text built from ``fields`` joined by
    ``separator`` (the model's); ``parse_workers``: see :func:`text_chunks`, each given
    ``parse_block_lines`` lines at a time."""

    path: Path
    chunk_size: int
    separator: str
    fields: tuple[str, ...]
    id_field: str | None = None
    skip_invalid: bool = False
    limit: int | None = None
    parse_workers: int = 0
    parse_block_lines: int = PARSE_BLOCK_LINES


def text_chunks(source: ChunkSource, report: ReadReport) -> Iterator[TextChunk]:
    """``(ids, texts)`` of one chunk of papers after another; ``report`` counts what was read.

    ``source.parse_workers``: processes that parse a JSON-lines file's records and build their texts while
    this one decompresses and splits the lines and checks ids in order (the same chunks, report and
    errors as reading alone: ``read_papers``); other formats are read here.
    """
    if source.parse_workers > 0 and detect_format(source.path) == "jsonl":
        parsed = _parsed_in_parallel(source, report, source.parse_workers)
    else:
        papers = read_papers(source.path, id_field=source.id_field, skip_invalid=source.skip_invalid, report=report)
        parsed = ((p.paper_id, p.text(source.separator, source.fields)) for p in papers)
    if source.limit is not None:
        parsed = itertools.islice(parsed, source.limit)
    while chunk := list(itertools.islice(parsed, source.chunk_size)):
        yield [paper_id for paper_id, _ in chunk], [text for _, text in chunk]


def _parsed_in_parallel(source: ChunkSource, report: ReadReport, workers: int) -> Iterator[tuple[str, str]]:
    """``(id, text)`` of each paper, as ``read_papers`` reads them, parsed by ``workers`` processes."""
    path = str(source.path)
    duplicates = DuplicateCheck(path)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with_parent) as pool:
        pending: deque[Future] = deque()
        for block in _line_blocks(source.path, source.parse_block_lines):
            if isinstance(block, InputFileError):  # the file ends in damage: after every line before it
                pending.append(_done(block))
            else:
                pending.append(pool.submit(_parse_block, path, block, source.id_field, source.separator, source.fields))
            while len(pending) > 2 * workers or (pending and pending[0].done()):
                yield from _checked(pending.popleft().result(), source.skip_invalid, report, duplicates)
        while pending:
            yield from _checked(pending.popleft().result(), source.skip_invalid, report, duplicates)


def _line_blocks(path: Path, size: int) -> Iterator[list[tuple[int, bytes]] | InputFileError]:
    block: list[tuple[int, bytes]] = []
    line_no = 0
    with open_input(path) as (_, stream):
        lines = iter(stream)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                break
            except GZIP_ERRORS as exc:
                if block:
                    yield block
                yield InputFileError(str(path), line_no + 1, f"truncated or corrupt gzip data ({exc})")
                return
            line_no += 1
            block.append((line_no, raw))
            if len(block) == size:
                yield block
                block = []
    if block:
        yield block


def _done(value: object) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _parse_block(
    path: str, block: list[tuple[int, bytes]], id_field: str | None, separator: str, fields: tuple[str, ...]
) -> list[tuple[int, str, bytes, str] | InvalidRecordError]:
    """A parsing process: ``(line, id, text digest, text)`` per record, or the record's error."""
    out: list = []
    for line_no, raw in block:
        record = jsonl_record(path, line_no, raw)
        if record is BLANK:
            continue
        if isinstance(record, InvalidRecordError):
            out.append(record)
            continue
        try:
            paper = paper_from_dict(record, id_field)
        except ValueError as exc:
            out.append(exc if isinstance(exc, InvalidRecordError) else InvalidRecordError(path, line_no, str(exc)))
            continue
        out.append((line_no, paper.paper_id, text_digest(paper), paper.text(separator, fields)))
    return out


def _checked(
    results: list | InputFileError, skip_invalid: bool, report: ReadReport, duplicates: DuplicateCheck
) -> Iterator[tuple[str, str]]:
    """``read_papers``' checks in order: an error raised or (``skip_invalid``) counted, duplicates dropped."""
    if isinstance(results, InputFileError):
        raise results
    for result in results:
        try:
            if isinstance(result, InvalidRecordError):
                raise result
            line_no, paper_id, digest, text = result
            if not duplicates.is_new(paper_id, digest, line_no):
                report.duplicates += 1
                continue
        except InvalidRecordError as error:
            if not skip_invalid:
                raise
            report.add_skip(error)
            continue
        report.papers += 1
        yield paper_id, text


class ChunkReader:
    """The chunks of a :class:`ChunkSource`, read ahead of the consumer; iterate once, then close.

    ``in_process``: read in a spawned process (else on a thread). An error of the input is not
    raised where it happens but kept in ``error`` and the chunks end there, so that the consumer
    finishes every chunk before it (the embedding job keeps them for the rerun) and raises it then.
    ``report`` is complete once the chunks ended without an error. ``poll_s``: how often a wait for
    the process checks that it still runs.
    """

    def __init__(self, source: ChunkSource, in_process: bool, poll_s: float = POLL_S):
        self.source = source
        self.poll_s = poll_s
        self.in_process = in_process
        self.report = ReadReport()
        self.error: BaseException | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._queue: multiprocessing.Queue | None = None
        self._thread_chunks: Iterator[TextChunk] | None = None
        self._chunks: Iterator[TextChunk] | None = None

    def started(self) -> ChunkReader:
        """Start reading now (else at the first chunk asked for)."""
        if self._chunks is None:
            self._chunks = self._from_process() if self.in_process else self._from_thread()
            if self.in_process:
                self._start_process()
        return self

    def __iter__(self) -> Iterator[TextChunk]:
        self.started()
        try:
            yield from self._chunks
        except (InvalidRecordError, OSError) as exc:  # bad input, or a file that cannot be read
            self.error = exc

    def _from_thread(self) -> Iterator[TextChunk]:
        self._thread_chunks = ahead(text_chunks(self.source, self.report), 1, "sciembed-read-ahead")
        yield from self._thread_chunks

    def _start_process(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue(maxsize=CHUNKS_AHEAD)
        # Not a daemon: it starts parsing processes of its own (it ends with the job all the same).
        self._process = context.Process(target=_read_into, args=(self.source, self._queue), name="sciembed-reader")
        self._process.start()

    def _from_process(self) -> Iterator[TextChunk]:
        while True:
            kind, value = self._next_message()
            if kind == "chunk":
                yield value
            elif kind == "end":
                self.report = value
                return
            else:
                raise value

    def _next_message(self) -> tuple[str, object]:
        while True:
            try:
                return self._queue.get(timeout=self.poll_s)
            except queue.Empty:
                if self._process.is_alive():
                    continue
            try:  # it ended: anything it sent before is in the pipe already
                return self._queue.get(timeout=self.poll_s)
            except queue.Empty:
                code = self._process.exitcode
                raise RuntimeError(
                    f"{self.source.path}: the process reading it ended unexpectedly (exit code {code})"
                ) from None

    def close(self) -> None:
        if self._thread_chunks is not None:
            self._thread_chunks.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join()
            self._queue.close()
            self._queue.cancel_join_thread()

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_into(source: ChunkSource, out: multiprocessing.Queue) -> None:
    """The reading process: chunks, then ``("end", report)``, or ``("error", exception)``."""
    exit_with_parent()  # a killed job must not leave this process waiting on a full queue
    report = ReadReport()
    try:
        for chunk in text_chunks(source, report):
            out.put(("chunk", chunk))
        out.put(("end", report))
    except BaseException as exc:  # handed to the job, which raises it (one line for bad input)
        out.put(("error", exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")))
    out.close()
    out.join_thread()


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True
