"""FAISS indexes keyed by the SQLite row id: exact (flat), HNSW, or IVF-PQ (trained, compact).

Vectors are L2-normalised before they reach FAISS, so inner product = cosine similarity.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import fsync_dir

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "flat": {},
    # efSearch chosen on the 1M-vector benchmark (docs/PERFORMANCE.md) for recall@10 >= 0.95
    "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 96},
    # nlist / m filled in from the expected size and the dimension; rerank: candidates per result re-scored
    # exactly from the stored vectors
    "ivfpq": {"nprobe": 32, "nbits": 8, "rerank": 8},
}


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # the `serve` extra
        raise ImportError("the vector index needs faiss-cpu: pip install 'sciembed[serve]'") from exc
    return faiss


def _pq_subquantizers(dimension: int) -> int:
    """The largest m <= dimension / 8 that divides the dimension (8 dimensions per PQ code byte or more)."""
    for m in range(max(1, dimension // 8), 0, -1):
        if dimension % m == 0:
            return m
    return 1


def resolve_params(kind: str, dimension: int, expected_size: int, params: dict[str, Any] | None) -> dict[str, Any]:
    resolved = {**DEFAULT_PARAMS[kind], **(params or {})}
    if kind == "ivfpq":
        resolved.setdefault("nlist", int(max(16, min(65536, 4 * round(math.sqrt(max(1, expected_size)))))))
        resolved.setdefault("m", _pq_subquantizers(dimension))
    return resolved


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def new_index(kind: str, dimension: int, params: dict[str, Any]):
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = int(params["efConstruction"])
        inner.hnsw.efSearch = int(params["efSearch"])
        return faiss.IndexIDMap2(inner)
    if kind == "ivfpq":
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFPQ(
            quantizer,
            dimension,
            int(params["nlist"]),
            int(params["m"]),
            int(params["nbits"]),
            faiss.METRIC_INNER_PRODUCT,
        )
        index.nprobe = int(params["nprobe"])
        return index  # IVF indexes take ids natively
    raise ValueError(f"unknown index kind {kind!r}")


def needs_training(kind: str) -> bool:
    return kind == "ivfpq"


def train(index, sample: np.ndarray) -> None:
    faiss = _faiss()
    sample = normalise(sample)
    ivf = faiss.extract_index_ivf(index)
    if len(sample) < ivf.nlist:
        raise ValueError(
            f"training an IVF index with nlist={ivf.nlist} needs at least that many vectors, got {len(sample)}"
        )
    index.train(sample)


def configure(index, kind: str, params: dict[str, Any]) -> None:
    """Search-time settings (not all are kept by faiss.write_index)."""
    faiss = _faiss()
    if kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = int(params["efSearch"])
    elif kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def add(index, vectors: np.ndarray, row_ids: np.ndarray) -> None:
    index.add_with_ids(normalise(vectors), np.ascontiguousarray(row_ids, dtype=np.int64))


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row ids), each (n, k); row id -1 where the index holds fewer than k vectors."""
    if index.ntotal == 0 or k <= 0:
        n = len(queries)
        return np.zeros((n, max(k, 0)), np.float32), np.full((n, max(k, 0)), -1, np.int64)
    return index.search(normalise(queries), int(k))


def save(index, path: Path) -> None:
    """Write to a temporary name, fsync, rename (the old generation's file stays untouched)."""
    faiss = _faiss()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load(path: Path, kind: str, params: dict[str, Any], mmap: bool = False):
    faiss = _faiss()
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    index = faiss.read_index(str(path), flags)
    configure(index, kind, params)
    return index
