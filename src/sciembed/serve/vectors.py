"""FAISS indexes keyed by the SQLite row id: exact (flat), HNSW, IVF-Flat (trained), IVF-PQ (trained, compact) or
IVF-PQ fast scan (trained, 4-bit codes scanned with SIMD, candidates re-ranked exactly from the stored vectors).

Vectors are L2-normalised before they reach FAISS, so inner product = cosine similarity.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..data.atomic import write_atomic

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "flat": {},
    # efSearch / nprobe are starting points: PaperIndex.calibrate measures recall@10 against exact search
    # and raises them until the recall target is met (docs/SERVING.md, "Index kinds and parameters")
    "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 64},
    # nlist filled in from the expected size
    "ivfflat": {"nprobe": 16},
    # nlist / m filled in from the expected size and the dimension; rerank: candidates per result re-scored
    # exactly from the stored vectors
    "ivfpq": {"nprobe": 32, "nbits": 8, "rerank": 8},
    # m filled in (dimension / 4: one 4-bit code per 4 dimensions); rerank x k candidates (at most
    # RERANK_MAX) re-scored exactly. On 1M sciembed-minilm vectors a query scans 48-byte codes instead of
    # 1,536-byte rows: nprobe 128 took 1.4 ms where IVF-Flat needed 11 ms (other loads; docs/PERFORMANCE.md)
    "ivfpqfs": {"nprobe": 64, "rerank": 20},
}
RERANK_MAX = 1000  # candidates re-scored per query, whatever k asks for
RECALL_TARGET = 0.95  # recall@10 against exact search that calibration aims for, unless params say otherwise
# The search-time knob of each approximate kind and the values calibration tries, in order of cost.
SEARCH_KNOBS: dict[str, tuple[str, tuple[int, ...]]] = {
    "hnsw": ("efSearch", (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)),
    "ivfflat": ("nprobe", (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)),
    "ivfpqfs": ("nprobe", (4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)),
}
RERANKED = ("ivfpq", "ivfpqfs")  # kinds whose candidates are re-scored from the stored vectors
IVF_KINDS = ("ivfflat", "ivfpq", "ivfpqfs")
# How far above the target calibration aims. Its queries are indexed vectors (own row left out). On real
# sciembed-minilm vectors with IVF they measured like held-out papers' vectors, but title queries (the
# adhoc_query adapter) scored 0.025-0.03 lower at the same nprobe, and with synthetic near-duplicates
# in the index held-out queries scored ~0.03 lower. In an HNSW graph a query that is a node starts next
# to its neighbours, which overstates recall at low efSearch (0.85 vs 0.60 at efSearch 16 on 50k TF-IDF
# vectors, 0.954 vs 0.936 at 256, 0.979 vs 0.974 at 512).
# Held-out title queries (calibrate(extra=...)) need no margin of this kind; see PaperIndex.calibrate.
RECALL_MARGINS = {"hnsw": 0.03, "ivfflat": 0.03, "ivfpqfs": 0.03}
HELD_OUT_MARGIN = 0.01


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
    if kind in IVF_KINDS:
        resolved.setdefault("nlist", ivf_lists(expected_size))
    if kind in SEARCH_KNOBS:
        resolved.setdefault("recall_target", RECALL_TARGET)
    if kind == "ivfpq":
        resolved.setdefault("m", _pq_subquantizers(dimension))
    if kind == "ivfpqfs":
        resolved.setdefault("m", _fast_scan_subquantizers(dimension))
    return resolved


def _fast_scan_subquantizers(dimension: int) -> int:
    """An even m dividing the dimension, as close to dimension / 4 as there is (fast scan packs codes in pairs)."""
    for m in sorted(range(2, dimension + 1, 2), key=lambda m: abs(m - dimension / 4)):
        if dimension % m == 0:
            return m
    return dimension


def ivf_lists(expected_size: int) -> int:
    """About 4 sqrt(n) inverted lists (FAISS's rule of thumb), 16 to 65,536."""
    return int(max(16, min(65536, 4 * round(math.sqrt(max(1, expected_size))))))


def set_threads(threads: int) -> int:
    """FAISS's OpenMP threads for searches started by the calling thread (OpenMP keeps the setting per
    thread); returns the previous number. A server answering one query
    per call wants 1: an OpenMP region per tiny search costs a thread wake-up, which on a busy machine
    took 30 ms for a 0.02 ms search (docs/PERFORMANCE.md)."""
    faiss = _faiss()
    previous = int(faiss.omp_get_max_threads())
    faiss.omp_set_num_threads(int(threads))
    return previous


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
    if kind == "ivfflat":
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, int(params["nlist"]), faiss.METRIC_INNER_PRODUCT)
        index.nprobe = int(params["nprobe"])
        return index  # IVF indexes take ids natively
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
    if kind == "ivfpqfs":
        quantizer = faiss.IndexFlatIP(dimension)
        nlist, m = int(params["nlist"]), int(params["m"])
        index = faiss.IndexIVFPQFastScan(quantizer, dimension, nlist, m, 4, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = int(params["nprobe"])
        return index
    raise ValueError(f"unknown index kind {kind!r}")


def needs_training(kind: str) -> bool:
    return kind in IVF_KINDS


TRAIN_POINTS_PER_LIST = 39  # FAISS's minimum for a stable k-means; fewer lists when the sample is smaller
# k-means on more points costs time and changes little: on 1M vectors, 4,096 lists, 160k points x 10
# iterations took 200 s on the shared 2 cores (the 2.6x larger 64-per-list sample took most of a 25 min build)
TRAIN_MAX_POINTS_PER_LIST = 40
TRAIN_ITERATIONS = 10


def lists_for_sample(params: dict[str, Any], sample_size: int) -> dict[str, Any]:
    """``params`` with ``nlist`` lowered, if needed, to what a sample of this size trains well (at least 16
    lists or as many as the sample has vectors)."""
    nlist = int(params["nlist"])
    affordable = min(sample_size, max(16, sample_size // TRAIN_POINTS_PER_LIST))
    return params if nlist <= affordable else {**params, "nlist": int(max(1, affordable))}


def train(index, sample: np.ndarray, seed: int = 0) -> None:
    faiss = _faiss()
    ivf = faiss.extract_index_ivf(index)
    if len(sample) < ivf.nlist:
        raise ValueError(
            f"training an IVF index with nlist={ivf.nlist} needs at least that many vectors, got {len(sample)}"
        )
    if isinstance(ivf, faiss.IndexIVFPQFastScan) and len(sample) < 16:  # 16 codes per 4-bit sub-quantizer
        raise ValueError(f"training an IVF-PQ fast-scan index needs at least 16 vectors, got {len(sample)}")
    most = TRAIN_MAX_POINTS_PER_LIST * int(ivf.nlist)
    if len(sample) > most:  # an even subsample
        sample = sample[np.random.default_rng(seed).choice(len(sample), most, replace=False)]
    ivf.cp.niter = TRAIN_ITERATIONS
    ivf.cp.max_points_per_centroid = TRAIN_MAX_POINTS_PER_LIST
    index.train(normalise(sample))


def configure(index, kind: str, params: dict[str, Any]) -> None:
    """Search-time settings (not all are kept by faiss.write_index)."""
    faiss = _faiss()
    if kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = int(params["efSearch"])
    elif kind in IVF_KINDS:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def faiss_ivf_lists(index) -> int:
    return int(_faiss().extract_index_ivf(index).nlist)


def add(index, vectors: np.ndarray, row_ids: np.ndarray) -> None:
    index.add_with_ids(normalise(vectors), np.ascontiguousarray(row_ids, dtype=np.int64))


def search_parameters(kind: str, knob_value: int):
    """Per-call search parameters (thread-safe: the shared index object is not changed)."""
    faiss = _faiss()
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=int(knob_value))
    if kind in IVF_KINDS:
        return faiss.SearchParametersIVF(nprobe=int(knob_value))
    return None


def search(index, queries: np.ndarray, k: int, parameters=None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row ids), each (n, k); row id -1 where the index holds fewer than k vectors."""
    if index.ntotal == 0 or k <= 0:
        n = len(queries)
        return np.zeros((n, max(k, 0)), np.float32), np.full((n, max(k, 0)), -1, np.int64)
    if parameters is None:
        return index.search(normalise(queries), int(k))
    return index.search(normalise(queries), int(k), params=parameters)


def write(index, handle: BinaryIO) -> None:
    """Serialise ``index`` into an open binary file; a failed write (a full disk) raises OSError.

    Python writes the bytes: ``faiss.write_index`` to a path only prints the error of its closing
    flush, so a full disk gave a truncated file without an exception (and the commit named it)."""
    faiss = _faiss()
    faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))


def save(index, path: Path) -> None:
    """Write to a temporary name, fsync, rename (the old generation's file stays untouched)."""
    write_atomic(path, lambda handle: write(index, handle))


def load(path: Path, kind: str, params: dict[str, Any], mmap: bool = False):
    faiss = _faiss()
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    index = faiss.read_index(str(path), flags)
    configure(index, kind, params)
    return index
