"""An on-disk embedding cache: ``<root>/<model fingerprint>/<adapter>/shard-*.npz``.

Each shard holds ``keys`` (sha256 hex of the exact text the model embeds) and ``vectors``. A text is
embedded once per model and adapter, whatever task or run asks for it; a second run re-scores only.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings of one model fingerprint and one adapter, keyed by document text.

    A shard that cannot be read, or whose vectors do not have the model's ``dimension``, is removed
    and its texts are embedded again: a damaged cache costs a recomputation, never a failure.
    """

    def __init__(self, root: str | Path, fingerprint: str, adapter: str, dimension: int | None = None):
        self.folder = Path(root) / fingerprint / adapter
        self.dimension = dimension
        self._index: dict[str, np.ndarray] | None = None

    def _read_shard(self, shard: Path) -> tuple[list[str], np.ndarray] | None:
        try:
            with np.load(shard, allow_pickle=False) as data:
                keys, vectors = data["keys"].tolist(), np.asarray(data["vectors"], dtype=np.float32)
        except Exception:  # noqa: BLE001 - truncated zip, bad header, missing array: all mean "damaged"
            return None
        if vectors.ndim != 2 or len(keys) != len(vectors) or not all(isinstance(k, str) for k in keys):
            return None
        if self.dimension is not None and vectors.shape[1] != self.dimension:
            return None
        return keys, vectors

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            if self.folder.is_dir():
                for shard in sorted(self.folder.glob("shard-*.npz")):
                    content = self._read_shard(shard)
                    if content is None:
                        shard.unlink(missing_ok=True)  # recomputed on demand
                        continue
                    for key, vector in zip(*content, strict=True):
                        self._index[key] = vector
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def lookup(self, texts: Sequence[str]) -> tuple[list[np.ndarray | None], list[int]]:
        """Cached vectors in order (None where absent) and the positions that are absent."""
        index = self._load()
        found = [index.get(text_key(t)) for t in texts]
        return found, [i for i, v in enumerate(found) if v is None]

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        if not len(texts):
            return
        index = self._load()
        keys = [text_key(t) for t in texts]
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex[:12]}"
        tmp = self.folder / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.asarray(keys), vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.folder / f"{name}.npz")
        for key, vector in zip(keys, np.asarray(vectors, dtype=np.float32), strict=True):
            index[key] = vector

    def get_or_compute(
        self, texts: Sequence[str], compute: Callable[[list[int]], np.ndarray]
    ) -> tuple[np.ndarray, int]:
        """Vectors for ``texts``; ``compute(positions)`` embeds the uncached ones. Returns (vectors, n computed)."""
        found, missing = self.lookup(texts)
        if missing:
            # embed each distinct text once
            first: dict[str, int] = {}
            for i in missing:
                first.setdefault(texts[i], i)
            todo = list(first.values())
            new = np.asarray(compute(todo), dtype=np.float32)
            self.add([texts[i] for i in todo], new)
            found, _ = self.lookup(texts)
            computed = len(todo)
        else:
            computed = 0
        return np.stack(found).astype(np.float32) if found else np.zeros((0, 0), np.float32), computed
