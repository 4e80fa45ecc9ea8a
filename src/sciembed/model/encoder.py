"""The sciembed encoder: tokenizer + Hugging Face base + per-format adapters + pooling."""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Paper, as_paper
from ..engine.options import PROGRESS_MIN_DOCS, EncodeOptions, resolve_options
from .adapters import BottleneckConfig, LayerAdapters
from .config import SciEmbedConfig
from .formats import canonical_format
from .injection import AdapterRouter, encoder_layers, install_router
from .packed import Packed, pack_host, packed_hidden, packed_pool, supports_packed, unpack
from .pooling import pool
from .text import TextMixin, pad_ids

__all__ = ["PROGRESS_MIN_DOCS", "SciEmbedModel", "length_sorted_batches"]
# The GPU path: batches are formed by a token budget (batch size x longest length, padding included)
# over length-sorted inputs instead of a fixed number of documents.
DEFAULT_GPU_MAX_TOKENS = 16384
# The unpadded (packed) GPU path pays no padding and no attention mask: larger batches keep the
# matrix units busy (65536 tokens of BERT-base: ~1 GB of activations in bf16).
DEFAULT_PACKED_MAX_TOKENS = 65536
# The pipelined path tokenises and collates in groups of documents on a background thread while the
# device works on the previous group. Small groups keep the device fed: 8192-document groups left it
# waiting (H100, BERT-base: 4,312 docs/s with (1024, 8192), 5,677 with 1024; docs/PERFORMANCE.md).
PIPELINE_GROUPS = (1024,)
PIPELINE_QUEUE_BATCHES = 16
# Text building + tokenisation of the next groups run on their own thread, ahead of the packing
# thread by at most this many groups (False: both on one thread, in turn).
PIPELINE_OVERLAP = True
PIPELINE_AHEAD_GROUPS = 2


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU, fp16 on GPUs: as fast as bf16 there, and its 3 more mantissa bits keep embeddings
    within cosine 0.999999 of fp32 (bf16: 0.99987), which leaves sciembed-lite scores unchanged
    (docs/PERFORMANCE.md). An fp16 overflow falls back to bf16 (see :meth:`SciEmbedModel.encode`)."""
    if device.type == "cuda":
        return torch.float16
    return torch.float32


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "fp16": torch.float16,
        "float16": torch.float16,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
    }
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; known: {sorted(table)}")
    return table[dtype]


def length_sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    With ``max_tokens`` a batch also stops growing when batch size x its longest length would pass
    the budget, so short documents travel in large batches and long ones in small ones.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        full = len(current) >= batch_size
        over_budget = max_tokens is not None and current and (len(current) + 1) * longest > max_tokens
        if full or over_budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class SciEmbedModel(TextMixin, nn.Module):
    """An encoder with optional adapters per task format. Build it with :func:`sciembed.load`."""

    def __init__(self, base: nn.Module, tokenizer: Any, config: SciEmbedConfig):
        super().__init__()
        self.base = base
        self.tokenizer = tokenizer
        self.config = config
        self.adapters = nn.ModuleDict()
        self.router = AdapterRouter(self.adapters)
        self._fingerprint: tuple[Any, str] | None = None  # (weights and settings key, digest)
        # None: the pipelined encode path on CUDA, the plain one elsewhere; True/False forces it.
        self.pipeline: bool | None = None
        # Documents per tokenisation group of the pipelined path (None: PIPELINE_GROUPS).
        self.pipeline_group: int | None = None
        # None: the unpadded (packed) forward on CUDA in bf16/fp16 for BERT/RoBERTa bases, the padded
        # Hugging Face forward elsewhere; True/False forces it (True needs a supported base).
        self.packed: bool | None = None
        # The packed layer stack, through torch.compile after compile_packed() (None: eager).
        self._compiled_hidden: Callable[..., torch.Tensor] | None = None
        self.pipeline_stats: dict[str, float] = {}  # timings of the last pipelined encode
        install_router(base, self.router)

    # ---- adapters -------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.base.config.hidden_size)

    @property
    def dimension(self) -> int:
        return self.hidden_size

    @property
    def name(self) -> str:
        return self.config.name or type(self.base).__name__

    @property
    def formats(self) -> list[str]:
        return list(self.adapters.keys())

    def add_adapter(self, format: str, config: BottleneckConfig | None = None) -> LayerAdapters:
        name = canonical_format(format)
        stack = LayerAdapters(self.hidden_size, len(encoder_layers(self.base)), config or BottleneckConfig())
        stack.to(device=self.device, dtype=self.dtype)
        self.adapters[name] = stack
        self.config.formats = self.formats
        return stack

    def adapter_for_format(self, format: str | None) -> str | None:
        """The adapter to use for a format: itself, or None when the model has no adapters."""
        if format is None or not len(self.adapters):
            return None
        name = canonical_format(format)
        if name not in self.adapters:
            raise ValueError(f"model has no {name!r} adapter; it has: {', '.join(self.formats)}")
        return name

    # ---- device and dtype -----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.base.parameters()).dtype

    def place(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> SciEmbedModel:
        """Move to ``device`` in ``dtype``. Without a dtype the model keeps its own on its own device
        (so ``place("cuda", "fp16")`` then ``encode(device="cuda")`` stays fp16), and takes the
        device's default (fp32 CPU, bf16 GPU) when it moves."""
        target = torch.device(device) if device is not None else self.device
        same_device = target.type == self.device.type and (target.index is None or target == self.device)
        wanted = parse_dtype(dtype) or (self.dtype if same_device else default_dtype(target))
        if target != self.device or wanted != self.dtype:
            known = self._fingerprint is not None and self._fingerprint[0] == self._weights_key()
            self.to(device=target, dtype=wanted)
            if known:  # moving is not a change of weights: the digest stays
                self._fingerprint = (self._weights_key(), self._fingerprint[1])
        return self

    # ---- text -----------------------------------------------------------------------------------
    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad to the longest sequence of the batch."""
        input_ids, mask = pad_ids(ids, self.tokenizer.pad_token_id or 0)
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}

    # ---- forward --------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        format: str | None = None,
        normalize: bool | None = None,
    ) -> torch.Tensor:
        """Pooled embeddings for a padded batch, L2-normalised when ``normalize`` (default: as configured;
        training losses use the raw pooled output)."""
        with self.router.activated(self.adapter_for_format(format)):
            hidden = self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = pool(hidden, attention_mask, self.config.pooling)
        if self.config.normalize if normalize is None else normalize:
            pooled = nn.functional.normalize(pooled.float(), dim=-1).to(pooled.dtype)
        return pooled

    def use_packed(self) -> bool:
        """Whether :meth:`encode` runs the unpadded forward (see ``self.packed``)."""
        if self.packed is not None:
            return bool(self.packed) and supports_packed(self.base)
        return (
            self.device.type == "cuda" and self.dtype in (torch.bfloat16, torch.float16) and supports_packed(self.base)
        )

    def compile_packed(self, mode: str | None = None, backend: str = "inductor") -> SciEmbedModel:
        """Run the packed forward's layer stack through ``torch.compile`` (dynamic shapes), which fuses
        its elementwise work (bias and residual adds, LayerNorm, GELU) into fewer kernels. The first
        batches compile (~15 s for BERT-base on an H100), so it pays for large jobs. If compiling
        fails (no compiler or Triton), a warning says so and the eager forward runs."""
        self._compiled_hidden = torch.compile(packed_hidden, dynamic=True, mode=mode, backend=backend)
        return self

    def _packed_hidden(self, packed: Packed) -> torch.Tensor:
        if self._compiled_hidden is not None:
            try:
                return self._compiled_hidden(self.base, packed)
            except Exception as exc:  # noqa: BLE001  no compiler / Triton here: stay correct, run eager
                warnings.warn(
                    f"torch.compile of the packed forward failed ({type(exc).__name__}: {exc}); running it eagerly",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._compiled_hidden = None
        return packed_hidden(self.base, packed)

    def forward_packed(self, packed: Packed, format: str | None = None, normalize: bool | None = None) -> torch.Tensor:
        """Embeddings of a :class:`~sciembed.model.packed.Packed` batch: the same function as
        :meth:`forward` on the padded batch, computed on real tokens only."""
        with self.router.activated(self.adapter_for_format(format)):
            hidden = self._packed_hidden(packed)
        pooled = packed_pool(hidden, packed, self.config.pooling)
        if self.config.normalize if normalize is None else normalize:
            pooled = nn.functional.normalize(pooled.float(), dim=-1).to(pooled.dtype)
        return pooled

    def iter_batches(
        self,
        papers: Sequence[Paper | dict | str],
        batch_size: int,
        fields: Sequence[str] | None = None,
        max_tokens: int | None = None,
    ) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        ids = self.tokenize(self.texts(papers, fields))
        for batch in length_sorted_batches([len(x) for x in ids], batch_size, max_tokens):
            yield batch, self.collate([ids[i] for i in batch])

    @torch.inference_mode()
    def encode(
        self,
        papers: Sequence[Paper | dict | str],
        format: str = "proximity",
        batch_size: int | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        show_progress: bool | None = None,
        fields: Sequence[str] | None = None,
        max_tokens: int | None = None,
        *,
        options: EncodeOptions | None = None,
    ) -> np.ndarray:
        """Embed papers (Paper objects, dicts with title/abstract, or plain query strings).

        Returns a float32 array ``(len(papers), dim)`` in input order. ``format`` picks the adapter
        (``proximity``, ``classification``, ``regression``, ``adhoc_query`` or ``[PRX]``-style
        aliases); a model without adapters uses its base for every format.

        On CUDA (or with ``model.pipeline = True``) tokenisation and collation run on a background
        thread into pinned memory while the device computes, results stay on the device until the
        end, and batches are formed by a token budget: ``max_tokens`` (default
        ``DEFAULT_GPU_MAX_TOKENS`` on CUDA, where ``batch_size`` then no longer caps a batch).
        On CPU the default remains ``batch_size`` documents per length-sorted batch.
        """
        opts = resolve_options(options, batch_size, device, dtype, show_progress, fields, max_tokens)
        batch_size, fields, max_tokens = opts.batch_size, opts.fields, opts.max_tokens
        papers = list(papers)
        self.place(opts.device, opts.dtype)
        self.eval()
        if not papers:
            return np.zeros((0, self.hidden_size), dtype=np.float32)
        progress = _progress(len(papers), opts.show_progress(len(papers)))
        pipeline = opts.pipeline if opts.pipeline is not None else self.pipeline
        pipelined = self.device.type == "cuda" if pipeline is None else pipeline
        try:
            if pipelined:
                out = self._encode_pipelined(papers, format, batch_size, fields, max_tokens, progress)
            else:
                out = np.zeros((len(papers), self.hidden_size), dtype=np.float32)
                for batch, tensors in self.iter_batches(papers, batch_size, fields, max_tokens):
                    tensors = {k: v.to(self.device, non_blocking=True) for k, v in tensors.items()}
                    vectors = self(tensors["input_ids"], tensors["attention_mask"], format=format)
                    out[batch] = vectors.float().cpu().numpy()
                    progress.update(len(batch))
        finally:
            progress.close()
        if self.dtype == torch.float16 and not np.isfinite(out).all():
            # fp16 (the GPU default: closer to fp32 than bf16 at the same speed) has a narrow range.
            warnings.warn(
                "fp16 activations overflowed (non-finite embeddings); this model now runs in bf16",
                RuntimeWarning,
                stacklevel=2,
            )
            self.place(dtype=torch.bfloat16)
            return self.encode(papers, format, options=opts.but(device=self.device, dtype=torch.bfloat16))
        return out

    # ---- the pipelined (GPU) path ---------------------------------------------------------------
    def _pipeline_groups(self, n: int) -> Iterator[range]:
        sizes = (self.pipeline_group,) if self.pipeline_group else PIPELINE_GROUPS
        start, k = 0, 0
        while start < n:
            size = sizes[min(k, len(sizes) - 1)]
            # A short tail is merged into the group before it, so every group sorts well.
            stop = n if n - (start + size) < size // 4 else start + size
            yield range(start, stop)
            start, k = stop, k + 1

    def _tokenize_group(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of ``texts`` laid end to end (int64) and the length of each: the same ids as
        :meth:`tokenize`. The Rust call releases the GIL and runs on all cores (rayon)."""
        backend = self._backend_tokenizer()
        if backend is None:
            seqs = self.tokenize(texts)
            lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
            flat = np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
            return flat, lengths
        encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
        encodings = encode(list(texts), add_special_tokens=True)
        seqs = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        flat = np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def _token_groups(
        self, papers: Sequence[Paper | dict | str], fields: Sequence[str] | None
    ) -> Iterator[tuple[range, np.ndarray, np.ndarray]]:
        """Text and token ids of one group after another: ``(group, flat ids, lengths)``."""
        fields = tuple(fields or self.config.text_fields)
        separator = self.separator
        for group in self._pipeline_groups(len(papers)):
            texts = [as_paper(papers[i], i).text(separator, fields) for i in group]
            yield (group, *self._tokenize_group(texts))

    def _produce_groups(
        self,
        papers: Sequence[Paper | dict | str],
        fields: Sequence[str] | None,
        out: queue.Queue,
        stop: threading.Event,
    ) -> None:
        """Tokeniser thread: :meth:`_token_groups` into ``out``, then None (or the exception raised).

        It runs ahead of the packing thread by up to ``PIPELINE_AHEAD_GROUPS`` groups, so group k + 1
        is tokenised (in Rust, without the GIL, on all cores) while group k is sorted, packed and
        pinned, and the device works.
        """
        try:
            for item in self._token_groups(papers, fields):
                if not _put(out, item, stop):
                    return
            _put(out, None, stop)
        except BaseException as exc:  # handed on to the packing thread, then to the consumer
            _put(out, exc, stop)

    def _produce_batches(
        self,
        papers: Sequence[Paper | dict | str],
        batch_size: int,
        fields: Sequence[str] | None,
        max_tokens: int | None,
        pin: bool,
        out: queue.Queue,
        stop: threading.Event,
        packed: bool = False,
        overlap: bool | None = None,
    ) -> None:
        """Background thread: sort each tokenised group into batches, collate (and pin) each batch.

        Groups come from :meth:`_token_groups`, on a second thread (``overlap``, the default with
        ``PIPELINE_OVERLAP``) or inline. Batches are the same either way (same groups, same sort).
        Packed batches are one int64 buffer (ids, positions, segments, offsets, output rows): one
        pinned host tensor and one copy per batch.
        """
        overlap = PIPELINE_OVERLAP if overlap is None else overlap
        inner = threading.Event()
        tokenizer = None
        try:
            if overlap:
                groups: queue.Queue = queue.Queue(maxsize=PIPELINE_AHEAD_GROUPS)
                tokenizer = threading.Thread(
                    target=self._produce_groups,
                    args=(papers, fields, groups, inner),
                    name="sciembed-tokenize-groups",
                    daemon=True,
                )
                tokenizer.start()
                items: Iterable[Any] = iter(groups.get, None)
            else:
                items = self._token_groups(papers, fields)
            for item in items:
                if isinstance(item, BaseException):
                    raise item
                group, flat, lengths = item
                offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
                np.cumsum(lengths, out=offsets[1:])
                starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
                for batch in length_sorted_batches(lengths.tolist(), batch_size, max_tokens):
                    seqs = [flat[starts[i] : ends[i]] for i in batch]
                    rows = [group.start + i for i in batch]
                    if packed:
                        buffer, *sizes = pack_host(seqs, rows)
                        if pin:
                            buffer = buffer.pin_memory()
                        if not _put(out, (buffer, sizes), stop):
                            return
                        continue
                    tensors = self.collate(seqs)
                    index = torch.tensor(rows, dtype=torch.int64)
                    if pin:
                        tensors = {k: v.pin_memory() for k, v in tensors.items()}
                        index = index.pin_memory()
                    if not _put(out, (index, tensors), stop):
                        return
            _put(out, None, stop)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            _put(out, exc, stop)
        finally:
            inner.set()
            if tokenizer is not None:
                tokenizer.join()

    def _encode_pipelined(
        self,
        papers: Sequence[Paper | dict | str],
        format: str,
        batch_size: int,
        fields: Sequence[str] | None,
        max_tokens: int | None,
        progress: Any,
    ) -> np.ndarray:
        device = self.device
        cuda = device.type == "cuda"
        packed = self.use_packed()
        if max_tokens is None and cuda:
            max_tokens = DEFAULT_PACKED_MAX_TOKENS if packed else DEFAULT_GPU_MAX_TOKENS
            batch_size = max_tokens
        adapter = self.adapter_for_format(format)  # raise on a bad format before starting the thread
        results = torch.zeros((len(papers), self.hidden_size), dtype=torch.float32, device=device)
        batches: queue.Queue = queue.Queue(maxsize=PIPELINE_QUEUE_BATCHES)
        stop = threading.Event()
        producer = threading.Thread(
            target=self._produce_batches,
            args=(papers, batch_size, fields, max_tokens, cuda, batches, stop, packed),
            name="sciembed-tokenize",
            daemon=True,
        )
        producer.start()
        waited, started = 0.0, time.perf_counter()
        try:
            while True:
                ask = time.perf_counter()
                item = batches.get()
                waited += time.perf_counter() - ask
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                if packed:
                    buffer, (count, total, longest) = item
                    batch, index = unpack(buffer.to(device, non_blocking=True), count, total, longest)
                    vectors = self.forward_packed(batch, format=adapter)
                    results.index_copy_(0, index, vectors.float())
                    progress.update(count)
                    continue
                index, tensors = item
                input_ids = tensors["input_ids"].to(device, non_blocking=True)
                mask = tensors["attention_mask"].to(device, non_blocking=True)
                vectors = self(input_ids, mask, format=adapter)
                # No host synchronisation per batch: the rows go to their places on the device.
                results.index_copy_(0, index.to(device, non_blocking=True), vectors.float())
                progress.update(len(index))
        finally:
            stop.set()
            producer.join()
        vectors = results.cpu().numpy()
        # Where the launching thread's time went (benchmarks/gpu_variants.py): waiting for the host
        # side to hand over a batch, against the whole call.
        self.pipeline_stats = {"wall_s": time.perf_counter() - started, "wait_for_batches_s": waited}
        return vectors

    # ---- identity -------------------------------------------------------------------------------
    def _weights_key(self) -> tuple[Any, ...]:
        """Changes whenever a weight, buffer or setting could have: tensor names, storage and in-place
        version counters (optimiser steps and ``load_state_dict`` bump them), and the settings."""
        settings = self.config.to_dict()
        settings.pop("base_sha256", None)
        settings.pop("name", None)
        tensors = tuple((name, t.data_ptr(), t._version) for name, t in self.state_dict(keep_vars=True).items())
        return (repr(sorted(settings.items())), tensors)

    @property
    def fingerprint(self) -> str:
        """sha256 over all weights and the embedding settings: changes whenever embeddings could.

        Cached until the weights or settings change (see :meth:`_weights_key`); moving the model to
        another device or dtype keeps it.
        """
        key = self._weights_key()
        if self._fingerprint is None or self._fingerprint[0] != key:
            digest = hashlib.sha256()
            digest.update(key[0].encode())
            for name, tensor in sorted(self.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = (key, digest.hexdigest())
        return self._fingerprint[1]


def _put(out: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has stopped; False if it has."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, show: bool):
    if not show:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="doc", desc="embedding", smoothing=0.05)
