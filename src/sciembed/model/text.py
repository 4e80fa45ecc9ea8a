"""Papers to text to token ids: the one tokenisation path of inference and training (both stages).

Shared by the PyTorch model and the ONNX backend; the inference engine and the trainers call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..data import Paper, as_paper
from .wordpiece import AsciiWordPiece, fast_wordpiece, memo_pays

if TYPE_CHECKING:
    import torch


def pad_ids(ids: Sequence[Sequence[int]], pad_id: int, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64), padded to the longest sequence (rounded up to a
    ``multiple``: aligned rows let fused attention kernels skip a padded copy of their mask)."""
    longest = -(-max(len(x) for x in ids) // multiple) * multiple
    input_ids = np.full((len(ids), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), longest), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


class HostPadded(NamedTuple):
    """A padded batch on the host (pinned when it is bound for a GPU), one ``to`` away from the device."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @classmethod
    def of(cls, ids: Sequence[Sequence[int]], pad_id: int, pin: bool = False, multiple: int = 1) -> HostPadded:
        import torch  # here, not at the top: the exported backends use this module without torch

        input_ids, mask = (torch.from_numpy(a) for a in pad_ids(ids, pad_id, multiple))
        if pin:
            input_ids, mask = input_ids.pin_memory(), mask.pin_memory()
        return cls(input_ids, mask)

    def to(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask"}`` on ``device`` (asynchronous from pinned memory)."""
        return {name: t.to(device, non_blocking=True) for name, t in self._asdict().items()}


class TextMixin:
    """Text building and tokenisation for a model with ``tokenizer`` and ``config`` attributes."""

    tokenizer: Any
    config: Any

    @property
    def separator(self) -> str:
        return self.tokenizer.sep_token or "[SEP]"

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def texts(self, papers: Iterable[Paper | dict | str], fields: Sequence[str] | None = None) -> list[str]:
        fields = tuple(fields or self.config.text_fields)
        return [as_paper(p, i).text(self.separator, fields) for i, p in enumerate(papers)]

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_length`` (default: the model's); no padding.

        The ids of the Hugging Face tokenizer. A BERT WordPiece tokenizer goes through
        :mod:`.wordpiece` (ASCII documents from remembered chunks, the rest through Rust); another
        fast (Rust) tokenizer is called directly (``encode_batch_fast`` on a private copy set to
        truncate at ``max_length``), which releases the GIL and runs on all cores; a slow one
        through the wrapper.
        """
        limit = int(max_length or self.config.max_length)
        fast = self._memo_tokenizer(limit)
        if fast is not None:
            flat, lengths = fast.encode_flat(list(texts))
            ends = np.cumsum(lengths).tolist()
            ids = flat.tolist()
            return [ids[end - size : end] for end, size in zip(ends, lengths.tolist(), strict=True)]
        return self._rust_or_wrapper_ids(texts, limit)

    def _rust_or_wrapper_ids(self, texts: Sequence[str], limit: int) -> list[list[int]]:
        backend = self._backend_tokenizer(limit)
        if backend is not None:
            encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
            return [e.ids for e in encode(list(texts), add_special_tokens=True)]
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=limit,
            add_special_tokens=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return encoded["input_ids"]

    def tokenize_flat(self, texts: Sequence[str], max_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ids of :meth:`tokenize` laid end to end (int64) and the length of each text."""
        limit = int(max_length or self.config.max_length)
        fast = self._memo_tokenizer(limit)
        if fast is not None:
            return fast.encode_flat(list(texts))
        seqs = self._rust_or_wrapper_ids(texts, limit)
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        flat = np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def tokenizer_spec(self, max_length: int | None = None) -> str | None:
        """The Rust pipeline (``tokenizer.json`` text, truncating at ``max_length``); None: a slow tokenizer."""
        backend = self._backend_tokenizer(max_length)
        return backend.to_str() if backend is not None else None

    def _memo_tokenizer(self, max_length: int) -> AsciiWordPiece | None:
        """The chunk memo where it pays on this host (few cores), else None: Rust or the wrapper."""
        return self._fast_wordpiece(max_length) if memo_pays() else None

    def _fast_wordpiece(self, max_length: int) -> AsciiWordPiece | None:
        """The chunk-memo WordPiece for this tokenizer at ``max_length`` (None: not a BERT WordPiece)."""
        key = (id(self.tokenizer), max_length, getattr(self.tokenizer, "truncation_side", "right"))
        cache = self.__dict__.setdefault("_wordpiece_cache", {})
        if key not in cache:
            backend = self._backend_tokenizer(max_length)
            fast = None
            if backend is not None and key[2] == "right":
                encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch

                def rust_ids(texts: list[str]) -> list[list[int]]:
                    return [e.ids for e in encode(texts, add_special_tokens=True)]

                fast = fast_wordpiece(backend.to_str(), max_length, rust_ids)
            cache[key] = fast
        return cache[key]

    def _backend_tokenizer(self, max_length: int | None = None) -> Any:
        """A copy of the fast tokenizer's backend truncating at ``max_length`` (None: not a fast tokenizer)."""
        limit = int(max_length or self.config.max_length)
        key = (id(self.tokenizer), limit, getattr(self.tokenizer, "truncation_side", "right"))
        cache = self.__dict__.setdefault("_backend_cache", {})
        if key in cache:
            return cache[key]
        backend = None
        source = (
            getattr(self.tokenizer, "backend_tokenizer", None) if getattr(self.tokenizer, "is_fast", False) else None
        )
        if source is not None:
            try:
                from tokenizers import Tokenizer

                backend = Tokenizer.from_str(source.to_str())
                backend.no_padding()
                backend.enable_truncation(limit, direction=key[2])
            except Exception:  # noqa: BLE001 - any trouble: the wrapper's (slower) path
                backend = None
        cache[key] = backend
        return backend
