"""How an encode call runs: one frozen settings object instead of mutable attributes and globals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from ..data import as_field_list

# Calls with at least this many documents show a progress bar unless ``progress`` says otherwise.
PROGRESS_MIN_DOCS = 2048


@dataclass(frozen=True)
class EncodeOptions:
    """Settings of one ``encode`` call; none of them changes the embeddings beyond float rounding, except
    ``fp8`` (min cosine ~0.996 to fp32, docs/PERFORMANCE.md).

    batch_size: documents per batch (on CUDA the token budget ``max_tokens`` caps batches instead).
    max_tokens: token budget per batch (batch size x longest document, padding included; packed
        batches count real tokens). None: ``batch_size`` documents on CPU, 16384 (padded) or 65536
        (packed) tokens on CUDA.
    device, dtype: where and in which precision the model runs (None: where it is; a move takes the
        device's default dtype: fp32 CPU, fp16 CUDA).
    fields: paper fields joined into the text (None: the model's ``text_fields``).
    pipeline: tokenise and collate on background threads while the device computes (None: on CUDA).
    group_size: documents per tokenisation group of the pipeline; each group is sorted by length.
    tokenize_ahead: groups tokenised ahead on their own thread (0: the packing thread tokenises).
    queue_batches: collated batches the pipeline may hold ready.
    tokenize_workers: processes that build texts and tokenise (0: this process; the chunk-memo
        WordPiece holds the GIL, so a wide host tokenises wider with processes; spawned once per
        model, then kept). None: automatic, see :func:`sciembed.engine.run.auto_tokenize_workers`
        (on a pipelined call on a wide host, processes start in the background and serve once ready).
    host_cores: the host cores this call may use, for the automatic choices above (None: the cores of
        this process's affinity; a worker that shares its host with others, e.g. one Ray actor per
        GPU, passes its share).
    packed: the unpadded forward (None: for BERT/RoBERTa bases on CUDA in fp16/bf16, and on the CPU
        when the model pools CLS).
    compile: run the packed forward through ``torch.compile`` (12-28 s once on an H200; +0-6 % for
        BERT-base over the default, which fuses GELU, add + LayerNorm and the adapter's add itself;
        +19 % for MiniLM).
        None: automatic, on for calls (and ``embed_file`` jobs) of at least
        ``AUTO_COMPILE_MIN_DOCS`` documents where the packed CUDA forward runs and Triton is
        installed (see :func:`sciembed.engine.backends.torch.auto_compile`).
    fp8: the packed forward's matrix products in FP8 e4m3 (:mod:`sciembed.model.fp8`; GPUs of
        compute capability 8.9 or more, else ignored).
    progress: show a progress bar (None: for calls of at least ``PROGRESS_MIN_DOCS`` documents).
    """

    batch_size: int = 32
    max_tokens: int | None = None
    device: Any = None
    dtype: Any = None
    fields: tuple[str, ...] | None = None
    pipeline: bool | None = None
    group_size: int = 1024
    tokenize_ahead: int = 2
    queue_batches: int = 16
    tokenize_workers: int | None = None
    host_cores: int | None = None
    packed: bool | None = None
    compile: bool | None = None
    fp8: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.tokenize_workers is not None and self.tokenize_workers < 0:
            raise ValueError(f"tokenize_workers must be at least 0, got {self.tokenize_workers}")
        if self.host_cores is not None and self.host_cores < 1:
            raise ValueError(f"host_cores must be at least 1, got {self.host_cores}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be at least 1, got {self.group_size}")
        if self.fields is not None:  # one name ("title") or several
            object.__setattr__(self, "fields", as_field_list(self.fields))

    def but(self, **changes: Any) -> EncodeOptions:
        """A copy with some settings changed (``None`` values leave a setting as it is)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **changes) if changes else self

    def show_progress(self, documents: int) -> bool:
        return self.progress if self.progress is not None else documents >= PROGRESS_MIN_DOCS


def resolve_options(
    options: EncodeOptions | None,
    batch_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    show_progress: bool | None = None,
    fields: Sequence[str] | None = None,
    max_tokens: int | None = None,
) -> EncodeOptions:
    """``options`` with the keyword arguments of the older ``encode`` signature applied on top."""
    base = options if options is not None else EncodeOptions()
    return base.but(
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        progress=show_progress,
        fields=as_field_list(fields),
        max_tokens=max_tokens,
    )


OPTION_NAMES = tuple(f.name for f in fields(EncodeOptions))
