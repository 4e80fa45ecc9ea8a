"""Turning papers into padded token batches: shared by the PyTorch encoder and the ONNX backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..data import Paper, as_paper


def pad_ids(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64), padded to the longest sequence."""
    longest = max(len(x) for x in ids)
    input_ids = np.full((len(ids), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), longest), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


class TextMixin:
    """Text building and tokenisation for a model with ``tokenizer`` and ``config`` attributes."""

    tokenizer: Any
    config: Any

    @property
    def separator(self) -> str:
        return self.tokenizer.sep_token or "[SEP]"

    def texts(self, papers: Iterable[Paper | dict | str], fields: Sequence[str] | None = None) -> list[str]:
        fields = tuple(fields or self.config.text_fields)
        return [as_paper(p, i).text(self.separator, fields) for i, p in enumerate(papers)]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_length``; no padding.

        A fast (Rust) tokenizer is called directly (``encode_batch_fast`` on a private copy set to
        truncate at ``max_length``): the same ids as the Hugging Face wrapper without its per-document
        Python work, which bounded the GPU path.
        """
        backend = self._backend_tokenizer()
        if backend is not None:
            encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
            return [e.ids for e in encode(list(texts), add_special_tokens=True)]
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.config.max_length,
            add_special_tokens=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return encoded["input_ids"]

    def _backend_tokenizer(self) -> Any:
        """A copy of the fast tokenizer's backend truncating at ``max_length`` (None: not a fast tokenizer)."""
        key = (id(self.tokenizer), self.config.max_length, getattr(self.tokenizer, "truncation_side", "right"))
        cached = getattr(self, "_backend_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        backend = None
        source = (
            getattr(self.tokenizer, "backend_tokenizer", None) if getattr(self.tokenizer, "is_fast", False) else None
        )
        if source is not None:
            try:
                from tokenizers import Tokenizer

                backend = Tokenizer.from_str(source.to_str())
                backend.no_padding()
                backend.enable_truncation(self.config.max_length, direction=key[2])
            except Exception:  # noqa: BLE001 - any trouble: the wrapper's (slower) path
                backend = None
        self._backend_cache = (key, backend)
        return backend
