"""The engine: papers -> texts -> token groups -> length-sorted batches -> a backend -> vectors.

Written once for every backend. With the pipeline on (the GPU default) tokenisation runs on one
background thread and batch preparation (sorting, padding or packing, pinning) on another, so that
the device never waits for the host; off, the same steps run in turn on the calling thread, with all
documents in one group. Both give the same batches for the same groups.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..data import Paper, as_item_list, as_paper
from ..data.progress import progress_bar
from ..model.host import available_cores
from ..model.wordpiece import MEMO_MAX_CORES
from .backends import BatchRunner, runner_for
from .batching import groups, length_sorted_batches
from .options import EncodeOptions
from .processes import TokenizerPool, main_is_safe_to_spawn, shared_pool
from .threads import ahead


@dataclass(frozen=True)
class EncodeResult:
    """What one encode call produced, and where its time went."""

    vectors: np.ndarray  # float32 (documents, dimension), input order
    seconds: float
    wait_for_batches_s: float  # the calling thread waiting for the host side to hand over a batch
    batches: int
    pipelined: bool
    fell_back_to_bf16: bool = False


@dataclass(frozen=True)
class BatchPlan:
    """The resolved batching of one call (options plus the backend's defaults)."""

    batch_size: int
    max_tokens: int | None
    group_size: int
    tokenize_ahead: int
    pipelined: bool
    tokenize_workers: int = 0
    wait_for_workers: bool = True  # False: the automatic pool serves only once its processes run


# The automatic tokeniser processes: for pipelined calls of at least this many documents on hosts
# with more than MEMO_MAX_CORES cores, one process per AUTO_CORES_PER_WORKER cores, at most
# AUTO_MAX_WORKERS.
AUTO_WORKERS_MIN_DOCS = 4096
# Two cores a process: on the 16-core H200 host 8 processes ran the embedding job 7-43 % faster
# than 4 (10,317-10,575 against 7,226-9,629 docs/s, docs/PERFORMANCE.md "The embedding job, second round").
AUTO_CORES_PER_WORKER = 2
AUTO_MAX_WORKERS = 8


def auto_tokenize_workers(pipelined: bool, documents: int, cores: int, memo: bool, can_spawn: bool = True) -> int:
    """Tokeniser processes for a call that does not say: none unless the call is pipelined and
    large, the host wide (where the in-process chunk memo would hold the GIL against the threads
    that pack batches and launch kernels), the tokenizer a BERT WordPiece (``memo``; other
    tokenizers run in Rust on all cores already) and processes may be spawned (``can_spawn``: the
    main script is guarded, see :func:`~sciembed.engine.processes.main_is_safe_to_spawn`)."""
    wide = cores > MEMO_MAX_CORES
    if not (pipelined and memo and documents >= AUTO_WORKERS_MIN_DOCS and wide and can_spawn):
        return 0
    return max(1, min(AUTO_MAX_WORKERS, cores // AUTO_CORES_PER_WORKER))


def plan_batches(runner: BatchRunner, count: int, options: EncodeOptions, encoder: Any = None) -> BatchPlan:
    pipelined = runner.pipeline_default if options.pipeline is None else bool(options.pipeline)
    batch_size, max_tokens = options.batch_size, options.max_tokens
    if max_tokens is None and runner.default_max_tokens is not None:
        batch_size = max_tokens = runner.default_max_tokens  # the token budget alone caps a batch
    workers, wait = options.tokenize_workers, True
    if workers is None:
        workers, wait = 0, False
        if pipelined and count >= AUTO_WORKERS_MIN_DOCS:  # the probes below read files: small calls skip them
            memo = encoder is not None and has_wordpiece_memo(encoder)
            cores = available_cores() if options.host_cores is None else options.host_cores
            workers = auto_tokenize_workers(pipelined, count, cores, memo, main_is_safe_to_spawn())
    return BatchPlan(
        batch_size=batch_size,
        max_tokens=max_tokens,
        group_size=options.group_size if pipelined else max(count, 1),
        tokenize_ahead=options.tokenize_ahead if pipelined else 0,
        pipelined=pipelined,
        tokenize_workers=workers,
        wait_for_workers=wait,
    )


def start_tokenizers(encoder: Any, options: EncodeOptions, documents: int) -> None:
    """Start the tokeniser processes that calls of ``documents`` documents will use, now (for a job
    that knows it is large: they start beside its other preparations instead of during its first
    chunk). The model is where those calls will run."""
    runner = runner_for(encoder, None, replace(options, compile=False, fp8=False))  # builds nothing
    plan = plan_batches(runner, documents, options, encoder)
    if plan.tokenize_workers:
        tokenizer_pool(encoder, plan.tokenize_workers)


def has_wordpiece_memo(encoder: Any) -> bool:
    memo = getattr(encoder, "_fast_wordpiece", None)
    return memo is not None and memo(int(encoder.config.max_length)) is not None


class Marker:
    """An item of a stream of token groups that tokenisation and batch preparation pass on in its
    place, untouched (the stream's chunk boundaries, :mod:`sciembed.engine.stream`)."""


# A tokenisation job: ``(rows, items)``, the rows of a call (or of one chunk of a stream) and their
# papers; or a Marker.
GroupJob = tuple[range, Sequence[Any]] | Marker


def call_jobs(papers: Sequence[Paper | dict | str], group_size: int) -> Iterator[GroupJob]:
    """The groups of one call: consecutive ranges of its papers."""
    return ((g, papers[g.start : g.stop]) for g in groups(len(papers), group_size))


def token_groups(
    encoder: Any,
    papers: Sequence[Paper | dict | str],
    fields: Sequence[str] | None,
    group_size: int,
    workers: int = 0,
    texts_ahead: int = 0,
    wait_for_workers: bool = True,
) -> Iterator[tuple[range, np.ndarray, np.ndarray]]:
    """``(group, flat ids, lengths)`` of one group of documents after another (see :func:`tokenize_jobs`)."""
    return tokenize_jobs(encoder, call_jobs(papers, group_size), fields, workers, texts_ahead, wait_for_workers)


def tokenize_jobs(
    encoder: Any,
    jobs: Iterable[GroupJob],
    fields: Sequence[str] | None,
    workers: int = 0,
    texts_ahead: int = 0,
    wait_for_workers: bool = True,
) -> Iterator[tuple[range, np.ndarray, np.ndarray] | Marker]:
    """``(rows, flat ids, lengths)`` per ``(rows, items)`` job, in order; a Marker passes through.

    ``workers``: processes that build the texts and tokenise (``wait_for_workers`` False: a group
    is tokenised in this process while they start, and the rest by them from the first group on
    which they all run); ``texts_ahead``: without processes, texts are built on a thread of their
    own, that many groups ahead of tokenisation.
    """
    fields = tuple(fields or encoder.config.text_fields)
    separator = encoder.separator
    pool = tokenizer_pool(encoder, workers) if workers > 0 else None
    jobs = iter(jobs)
    if pool is None:
        yield from _tokenize_here(encoder, jobs, separator, fields, texts_ahead)
        return
    while not (wait_for_workers or pool.ready):
        job = next(jobs, None)
        if job is None:
            return
        yield from _tokenize_here(encoder, [job], separator, fields, 0)
    yield from pool.encode_paper_jobs(jobs, separator, fields, passes=Marker)


def _tokenize_here(
    encoder: Any, jobs: Iterable[GroupJob], separator: str, fields: tuple[str, ...], texts_ahead: int
) -> Iterator[tuple[range, np.ndarray, np.ndarray] | Marker]:
    texts = (
        job
        if isinstance(job, Marker)
        else (job[0], [as_paper(p, job[0].start + i).text(separator, fields) for i, p in enumerate(job[1])])
        for job in jobs
    )
    if texts_ahead:
        # Building texts is pure Python; Rust tokenisation releases the GIL: the two overlap.
        texts = ahead(texts, texts_ahead, "sciembed-texts")
    try:
        for item in texts:
            yield item if isinstance(item, Marker) else (item[0], *encoder.tokenize_flat(item[1]))
    finally:
        texts.close()


def tokenizer_pool(encoder: Any, workers: int) -> TokenizerPool | None:
    """The pool of ``workers`` tokenising processes for the encoder's tokenizer (started once per
    process and tokenizer, then kept); None for a tokenizer without a Rust pipeline (it stays here)."""
    limit = int(encoder.config.max_length)
    spec = encoder.tokenizer_spec(limit)
    return shared_pool(spec, limit, workers) if spec is not None else None


def host_batches(
    encoder: Any, papers: Sequence[Paper | dict | str], runner: BatchRunner, plan: BatchPlan, fields=None
) -> Iterator[Any]:
    """The backend's prepared batches of one call: each group sorted by length and cut by the plan's budget."""
    return prepare_jobs(encoder, call_jobs(papers, plan.group_size), runner, plan, fields)


def prepare_jobs(
    encoder: Any, jobs: Iterable[GroupJob], runner: BatchRunner, plan: BatchPlan, fields=None
) -> Iterator[Any]:
    """The backend's prepared batches of ``jobs`` (rows as the jobs number them); Markers pass through."""
    items = tokenize_jobs(
        encoder,
        jobs,
        fields,
        plan.tokenize_workers,
        texts_ahead=1 if plan.tokenize_ahead else 0,
        wait_for_workers=plan.wait_for_workers,
    )
    if plan.tokenize_ahead:
        # Rust tokenisation releases the GIL: group k + 1 is tokenised while group k is prepared.
        items = ahead(items, plan.tokenize_ahead, "sciembed-tokenize")
    try:
        for item in items:
            if isinstance(item, Marker):
                yield item
                continue
            group, flat, lengths = item
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
            for batch in length_sorted_batches(lengths.tolist(), plan.batch_size, plan.max_tokens):
                seqs = [flat[starts[i] : ends[i]] for i in batch]
                yield runner.prepare(seqs, [group.start + i for i in batch])
    finally:
        items.close()


def run_encode(
    encoder: Any, papers: Sequence[Paper | dict | str], format: str | None, options: EncodeOptions
) -> EncodeResult:
    """Embed ``papers`` with ``encoder`` (a SciEmbedModel, an OnnxEncoder, ...) as ``options`` say."""
    started = time.perf_counter()
    papers = as_item_list(papers)  # a bare string is one query; dicts are checked on the host thread
    encoder.place(options.device, options.dtype)
    adapter = encoder.adapter_for_format(format)  # a bad format fails before any thread starts
    if not papers:
        return EncodeResult(np.zeros((0, encoder.dimension), dtype=np.float32), 0.0, 0.0, 0, False)
    if options.compile is None and is_torch(encoder):  # the automatic choice, by this call's size
        from .backends.torch import auto_compile  # torch only here: exported models never import it

        options = replace(options, compile=auto_compile(encoder, options, len(papers)))
    runner = runner_for(encoder, adapter, options)
    plan = plan_batches(runner, len(papers), options, encoder)
    batches = host_batches(encoder, papers, runner, plan, options.fields)
    if plan.pipelined:
        batches = ahead(batches, options.queue_batches, "sciembed-prepare")
    progress = progress_bar(len(papers), options.show_progress(len(papers)))
    waited, count = 0.0, 0
    with inference_mode_for(encoder):  # this thread only: the host side builds plain tensors
        runner.begin(len(papers))
        try:
            while True:
                ask = time.perf_counter()
                batch = next(batches, None)
                waited += time.perf_counter() - ask
                if batch is None:
                    break
                progress.update(runner.run(batch))
                count += 1
        finally:
            batches.close()
            progress.close()
        vectors = runner.finish()
    result = EncodeResult(vectors, time.perf_counter() - started, waited, count, plan.pipelined)
    if is_fp16_torch(encoder) and not np.isfinite(vectors).all():
        return rerun_in_bf16(encoder, papers, format, options, started)
    return result


def is_torch(encoder: Any) -> bool:
    return getattr(encoder, "backend", "torch") == "torch"


def inference_mode_for(encoder: Any) -> contextlib.AbstractContextManager:
    """torch's inference mode for a PyTorch model; an exported graph needs none, so the ONNX and
    OpenVINO paths never import torch (seconds of start-up on a small CPU)."""
    if not is_torch(encoder):
        return contextlib.nullcontext()
    import torch

    return torch.inference_mode()


def is_fp16_torch(encoder: Any) -> bool:
    if not is_torch(encoder):
        return False
    import torch

    return getattr(encoder, "dtype", None) == torch.float16


def rerun_in_bf16(encoder: Any, papers: list, format: str | None, options: EncodeOptions, started: float):
    """fp16 (the GPU default: closer to fp32 than bf16 at the same speed) has a narrow range; an
    overflow reruns this call on a bf16 copy, and the model itself stays in fp16."""
    warnings.warn(
        "fp16 activations overflowed (non-finite embeddings); this call was recomputed in bf16",
        RuntimeWarning,
        stacklevel=4,
    )
    import torch

    copy = encoder.copy_as(torch.bfloat16)
    again = run_encode(copy, papers, format, options.but(dtype=torch.bfloat16))
    seconds = time.perf_counter() - started
    return EncodeResult(again.vectors, seconds, again.wait_for_batches_s, again.batches, again.pipelined, True)
