"""``sciembed embed``: a papers file in, a Parquet file of embeddings out, resumable chunk by chunk."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data import ReadReport, has_at_least
from ..data.progress import progress_bar
from ..data.readers import check_input_path
from ..engine import EncodeOptions
from ..engine.processes import main_is_safe_to_spawn
from ..engine.run import AUTO_WORKERS_MIN_DOCS, start_tokenizers
from ..model import Encoder, canonical_format
from ..model.encoding import EngineEncode
from ..model.host import available_cores
from .chunks import encode_chunks
from .metadata import EmbeddingMetadata, metadata_for, read_metadata, require_same_space
from .numerics import vectors_digest
from .reading import ChunkReader, ChunkSource
from .writer import ResumableParquetWriter, check_output_path


@dataclass(frozen=True)
class EmbedReport:
    """What one ``embed_file`` job wrote: ``rows`` embeddings in ``chunks`` chunks (``resumed_chunks`` of
    them kept from a killed run), what reading the input found (``read``) and where the job's wall
    time went (``seconds``: :data:`JOB_PHASES` in order)."""

    output: Path
    rows: int = 0
    chunks: int = 0
    resumed_chunks: int = 0
    read: ReadReport = field(default_factory=ReadReport)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``sciembed embed --json`` summary, with the written file's metadata."""
        metadata = read_metadata(self.output)
        return {
            "output": str(self.output),
            "rows": self.rows,
            "chunks": self.chunks,
            "resumed_chunks": self.resumed_chunks,
            "papers_read": self.read.papers,
            "duplicates_dropped": self.read.duplicates,
            "invalid_skipped": self.read.skipped,
            "invalid_examples": self.read.skipped_examples,
            "seconds": self.seconds,
            "metadata": metadata.to_json() if metadata else None,
        }

    def lines(self) -> list[str]:
        """The text summary that ``sciembed embed`` prints."""
        out = [f"resumed: {self.resumed_chunks} finished chunks kept"] if self.resumed_chunks else []
        return [*out, self.read.summary(), f"wrote {self.rows} embeddings to {self.output}"]


# A job's phases (``EmbedReport.seconds``): checks and the reader's start, the model's move to its
# device, the tokeniser processes' start, the wait for the input's size (counted on a thread
# meanwhile) for the automatic compile choice, the output's opening with its numerics probe, the
# chunks (reading included where the encoder waited for it), the output's completion.
JOB_PHASES = ("start", "place", "tokenizers", "compile_check", "open", "encode", "finish")


class _Phases:
    """Wall seconds of each phase, each measured from the end of the one before."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 4)
        self._last = now


# Inputs from this many papers on are read in a process of their own (starting it costs ~0.3 s).
READ_PROCESS_MIN_PAPERS = 20_000
MAX_PARSE_WORKERS = 4
VECTORS_CHANGED = (
    "this sciembed, torch or device computes other vectors than the run that wrote the finished parts "
    "(rounding), so resuming would mix the two: finish it with the setup that began it, or remove the parts"
)


def _input_identity(path: Path) -> dict[str, object]:
    stat = os.stat(path)
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def embed_file(
    model: Encoder,
    input_path: str | Path,
    output_path: str | Path,
    format: str = "proximity",
    batch_size: int = 32,
    device: str | None = None,
    dtype: str | None = None,
    id_field: str | None = None,
    skip_invalid: bool = False,
    chunk_size: int = 10_000,
    limit: int | None = None,
    show_progress: bool = True,
    options: EncodeOptions | None = None,
    read_process: bool | None = None,
) -> EmbedReport:
    """Embed every paper of ``input_path`` into ``output_path`` (Parquet), resuming a killed run.

    Chunks of ``chunk_size`` papers are written as they finish; rerunning the same command after a
    crash skips finished chunks, and the final file equals an uninterrupted run's. ``limit`` embeds
    only the first papers. ``options`` says how each chunk is encoded (the keyword arguments
    ``batch_size``, ``device`` and ``dtype`` override it). ``read_process``: read and parse the
    input in a process of its own (None: for inputs of at least ``READ_PROCESS_MIN_PAPERS`` papers,
    where processes may be spawned; the vectors are the same either way).
    """
    phases = _Phases()
    options = (options or EncodeOptions()).but(batch_size=batch_size, device=device, dtype=dtype, progress=False)
    input_path, output_path = Path(input_path), Path(output_path)
    _check_settings(options.batch_size, chunk_size, limit)
    check_input_path(input_path)
    check_output_path(output_path, [input_path])
    fmt = canonical_format(format)
    _warm_up_gpu(model, options)
    # Of the weights as loaded, before a move to fp16 (the digest is kept across moves): the same
    # fingerprint on CPU and GPU, and the one that `sciembed embed --ray` records.
    fingerprint = model.fingerprint
    in_process = _read_in_process(read_process, input_path, limit)
    source = ChunkSource(
        input_path,
        chunk_size,
        model.separator,
        tuple(options.fields or model.config.text_fields),  # the texts are built as the reader reads
        id_field=id_field,
        skip_invalid=skip_invalid,
        limit=limit,
        parse_workers=auto_parse_workers(available_cores()) if in_process else 0,
    )
    # Started first: the reading process's start and first chunk overlap the model's move and probe.
    with ChunkReader(source, in_process=in_process).started() as reader:
        # The input's size for the compile choice is counted while the model moves and the
        # tokenisers start (``has_at_least``: from the first 4 MB where that is clear).
        large = _count_ahead(model, options, input_path, limit)
        phases.done("start")
        model.place(options.device, options.dtype)
        phases.done("place")
        if isinstance(model, EngineEncode) and _tokenizes_in_processes(in_process, input_path, limit):
            start_tokenizers(model, options, min(chunk_size, limit or chunk_size))  # beside the probe
        phases.done("tokenizers")
        options = _job_compile(model, options, limit, large)
        phases.done("compile_check")
        writer, metadata = _open_writer(model, fmt, options, fingerprint, input_path, output_path, id_field,
                                        skip_invalid, chunk_size, limit)  # fmt: skip
        try:
            _check_finished_parts(writer, metadata)
            phases.done("open")
            progress = progress_bar(show=show_progress)
            try:
                index = encode_chunks(model, writer, reader, fmt, options, progress)
            finally:
                progress.close()  # before any message: never on the progress bar's line
            if reader.error is not None:  # every chunk before the bad record is written: raised now
                raise reader.error
            chunks = index + 1
            if chunks == 0:
                raise ValueError(f"{input_path}: no papers to embed")
            phases.done("encode")
            rows = writer.finish(chunks, model.dimension)
            phases.done("finish")
        finally:
            writer.close()
    read = reader.report
    return EmbedReport(output_path, rows=rows, chunks=chunks, resumed_chunks=writer.resumed_chunks, read=read,
                       seconds=phases.seconds)  # fmt: skip


def _open_writer(model, fmt, options, fingerprint, input_path, output_path, id_field, skip_invalid, chunk_size, limit):
    """The job's writer (resuming what a killed run of the same job finished) and its metadata."""
    job = {
        "input": _input_identity(input_path),
        "model": fingerprint,
        "format": model.adapter_for_format(fmt) or "base",
        "id_field": id_field,
        "skip_invalid": skip_invalid,
        "chunk_size": chunk_size,
        "batch_size": options.batch_size,  # padding differs with the batch: part of what must match
        "limit": limit,
        "dtype": str(model.dtype),
        "device_type": model.device.type,
    }
    if options.fp8:  # FP8 products move vectors beyond rounding: chunks with and without must not mix
        job["fp8"] = True  # recorded only when on, so that jobs written before stay resumable
    # What this code, library and device compute, bit for bit (see numerics.py): parts written by
    # another version must not be finished by this one.
    job["vectors"] = vectors_digest(model, fmt, options)
    metadata = metadata_for(model, fmt)
    writer = ResumableParquetWriter(
        output_path, job, metadata.schema_metadata(), inputs=[input_path], explain={"vectors": VECTORS_CHANGED}
    )
    return writer, metadata


def auto_parse_workers(cores: int) -> int:
    """Parsing processes of a large job's reading process: one per five cores, at most four (none
    below ten cores: there the model, not reading, bounds the job)."""
    return min(MAX_PARSE_WORKERS, cores // 5) if cores >= 10 else 0


def _read_in_process(read_process: bool | None, input_path: Path, limit: int | None) -> bool:
    if read_process is not None:
        return read_process
    if limit is not None and limit < READ_PROCESS_MIN_PAPERS:
        return False
    return main_is_safe_to_spawn() and has_at_least(input_path, READ_PROCESS_MIN_PAPERS)


def _tokenizes_in_processes(in_process: bool, input_path: Path, limit: int | None) -> bool:
    """Whether the job's first chunk may be large enough for the engine's tokeniser processes (read
    in a process: it is; else from the input's size), so that they start before it, beside the
    model's move and probe, not during it (a 19,000-paper job spent ~1 s of its first chunk
    starting them)."""
    if in_process:
        return True
    if limit is not None and limit < AUTO_WORKERS_MIN_DOCS:
        return False
    return main_is_safe_to_spawn() and has_at_least(input_path, AUTO_WORKERS_MIN_DOCS)


def _warm_up_gpu(model: Encoder, options: EncodeOptions) -> None:
    """CUDA's and Triton's start on a thread for a job of a PyTorch model on CUDA (the exported
    backends never import torch)."""
    if getattr(model, "backend", "torch") != "torch":
        return
    from ..model.gpu_warmup import warm_up_in_background

    warm_up_in_background(options.device if options.device is not None else model.device)


def _count_ahead(model: Encoder, options: EncodeOptions, input_path: Path, limit: int | None) -> Future | None:
    """Whether the input holds the papers from which a job compiles (``has_at_least``), counted on a
    thread; None where the choice does not depend on it."""
    if options.compile is not None or getattr(model, "backend", "torch") != "torch":
        return None
    from ..engine.backends.torch import AUTO_COMPILE_MIN_DOCS

    if limit is not None and limit < AUTO_COMPILE_MIN_DOCS:
        return None
    counting = ThreadPoolExecutor(1, thread_name_prefix="sciembed-count")
    try:
        return counting.submit(has_at_least, input_path, AUTO_COMPILE_MIN_DOCS)
    finally:
        counting.shutdown(wait=False)  # the count runs on; the thread ends with it


def _job_compile(model: Encoder, options: EncodeOptions, limit: int | None, large: Future | None) -> EncodeOptions:
    """The automatic compile choice (``options.compile`` None) made once for the whole job by its
    size (``large``: :func:`_count_ahead`), since each chunk alone is far below the size from which
    compiling pays."""
    if options.compile is not None or getattr(model, "backend", "torch") != "torch":
        return options
    from ..engine.backends.torch import AUTO_COMPILE_MIN_DOCS, auto_compile

    if large is None or not auto_compile(model, options, AUTO_COMPILE_MIN_DOCS):  # no packed CUDA forward here
        return replace(options, compile=False)
    return replace(options, compile=large.result())


def _check_finished_parts(writer: ResumableParquetWriter, metadata: EmbeddingMetadata) -> None:
    """A resumed job adds to parts of the same vector space only (parts of older versions carry none)."""
    for index in sorted(writer.finished_chunks()):
        try:
            found = read_metadata(writer.part_path(index))
        except ValueError:  # a damaged part: recomputed, never a reason to stop every rerun
            writer.part_path(index).unlink(missing_ok=True)
            continue
        if found is not None:
            require_same_space(metadata, found, writer.part_path(index))


def _check_settings(batch_size: int, chunk_size: int, limit: int | None) -> None:
    for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer (the number of papers to embed), got {limit!r}")
