"""``PaperIndex``: paper metadata (SQLite) + one FAISS index per format, built incrementally.

Every change is one *generation*. An add (1) inserts its rows into SQLite tagged with the next generation,
(2) writes each format's FAISS index to a new file named for that generation, (3) atomically replaces
``index.json`` (the commit point), (4) deletes the previous generation's files. A crash before (3) leaves
``index.json`` pointing at the old files, and readers ignore rows of uncommitted generations; the next
writer deletes them. So a crash while adding leaves the index exactly as it was before the add.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Paper
from ..data.atomic import write_atomic
from . import vectors as faiss_io
from .layout import (
    DATABASE,
    MANIFEST,
    IndexManifest,
    ModelInfo,
    choose_kind,
    read_manifest,
    unit_vector_file,
    vector_file,
    write_manifest,
)
from .metadata import paper_row, split_prefixed_id
from .projection import MapProjection
from .store import PaperStore

WRITER_LOCK = ".writer.lock"
HELD_OUT_QUERIES = "calibration-queries.npz"  # query vectors of indexed papers' titles (set_held_out_queries)
MAP_FORMAT_PREFERENCE = ("proximity",)
PROJECTION_MIN_VECTORS = 3
# Calibration of approximate indexes (efSearch / nprobe): recall@10 of indexed vectors used as queries
# (their own row left out) against exact search over the same index, at the first commit with at least
# CALIBRATION_MIN_VECTORS vectors and again whenever the index has doubled since.
RECALL_TARGET = faiss_io.RECALL_TARGET
CALIBRATION_QUERIES = 300
CALIBRATION_MIN_VECTORS = 2_000
CALIBRATION_K = 10


def model_info_of(encoder: Any, source: str | None = None) -> ModelInfo:
    """Name, fingerprint and dimension of an Encoder (``sciembed.model.protocol.Encoder``)."""
    return ModelInfo(
        name=encoder.name, fingerprint=encoder.fingerprint, dimension=int(encoder.dimension), source=source
    )


@dataclass(frozen=True)
class SearchHit:
    paper_id: str
    row_id: int
    score: float
    record: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # the paper's metadata row


@dataclass(frozen=True)
class AddReport:
    added: int
    skipped_existing: int
    generation: int
    count: int


class PaperIndex:
    """Open with :meth:`create` or :meth:`open`; readers and one writer may use a folder at the same time."""

    def __init__(self, folder: Path, manifest: IndexManifest, store: PaperStore, writable: bool, lock: Any = None):
        self.folder = folder
        self.manifest = manifest
        self.store = store
        self.writable = writable
        self._lock = lock
        self._indexes: dict[str, Any] = {}
        self._units: dict[str, np.ndarray] = {}  # format -> memory map of the unit-vector file
        self._projection: MapProjection | None = None
        self._staged = 0  # rows added since the last commit
        self._load_generation()

    # ---- opening ----------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | Path,
        model_info: ModelInfo | Any,
        formats: Sequence[str] = ("proximity",),
        kind: str = "auto",
        expected_size: int = 0,
        params: dict[str, Any] | None = None,
    ) -> PaperIndex:
        """A new, empty index in ``folder`` (which must not hold an index already)."""
        folder = Path(folder)
        if (folder / MANIFEST).exists():
            raise FileExistsError(f"{folder} already holds an index; use `sciembed index add` to add papers")
        info = model_info if isinstance(model_info, ModelInfo) else model_info_of(model_info)
        formats = tuple(dict.fromkeys(formats))
        if not formats:
            raise ValueError("an index needs at least one format")
        chosen = choose_kind(kind, expected_size)
        resolved = faiss_io.resolve_params(chosen, info.dimension, expected_size, params)
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock_writer(folder)
        files = {}
        trained = not faiss_io.needs_training(chosen)
        if trained:
            for fmt in formats:
                files[fmt] = vector_file(fmt, 0)
                faiss_io.save(faiss_io.new_index(chosen, info.dimension, resolved), folder / files[fmt])
        manifest = IndexManifest(
            model=info,
            formats=formats,
            kind=chosen,
            params=resolved,
            trained=trained,
            files=files,
            unit_vectors={fmt: unit_vector_file(fmt) for fmt in formats},
        )
        store = PaperStore(folder / DATABASE)
        write_manifest(folder, manifest)
        return cls(folder, manifest, store, writable=True, lock=lock)

    @classmethod
    def open(cls, folder: str | Path, writable: bool = False) -> PaperIndex:
        folder = Path(folder)
        manifest = read_manifest(folder)
        lock = _lock_writer(folder) if writable else None
        if writable:
            manifest = read_manifest(folder)  # re-read under the lock
        store = PaperStore(folder / DATABASE, thread_reads=not writable)  # a reader: one connection per thread
        index = cls(folder, manifest, store, writable=writable, lock=lock)
        if writable:
            index._recover()
        return index

    def close(self) -> None:
        self.store.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> PaperIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _load_generation(self) -> None:
        m = self.manifest
        self._indexes = {fmt: faiss_io.load(self.folder / name, m.kind, m.params) for fmt, name in m.files.items()}
        self._units = {}
        self._projection = MapProjection.load(self.folder / m.projection) if m.projection else None

    def _unit_rows(self, format: str, row_ids: np.ndarray) -> np.ndarray | None:
        """Unit vectors of these row ids from the memory-mapped file (None for an index without one)."""
        name = self.manifest.unit_vectors.get(format)
        if name is None:
            return None
        units = self._units.get(format)
        needed = int(row_ids.max()) + 1 if len(row_ids) else 0
        if units is None or len(units) < needed:  # first use, or rows added since it was mapped
            path = self.folder / name
            rows = path.stat().st_size // (4 * self.dimension) if path.exists() else 0
            if rows < needed:
                raise RuntimeError(f"{path} holds {rows} rows, the index refers to row {needed - 1}")
            # a plain ndarray over the map: indexing a np.memmap builds memmap objects (a tenth of a ms per query)
            units = np.asarray(np.memmap(path, dtype="<f4", mode="r", shape=(rows, self.dimension)))
            self._units[format] = units
        return units[row_ids]

    def _write_units(self, format: str, row_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Rows at their row ids' offsets (an add's row ids are consecutive); fsynced at commit."""
        name = self.manifest.unit_vectors.get(format)
        if name is None or not len(row_ids):
            return
        path = self.folder / name
        with open(path, "r+b" if path.exists() else "w+b") as handle:
            handle.seek(int(row_ids[0]) * 4 * self.dimension)
            handle.write(np.ascontiguousarray(faiss_io.normalise(vectors), dtype="<f4").tobytes())

    def _sync_units(self) -> None:
        for name in self.manifest.unit_vectors.values():
            path = self.folder / name
            if path.exists():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())

    def refresh(self, attempts: int = 5) -> bool:
        """Pick up a generation that another process committed; True if it changed."""
        for attempt in range(attempts):
            try:
                manifest = read_manifest(self.folder)
                if manifest.generation == self.manifest.generation:
                    return False
                previous = self.manifest
                self.manifest = manifest
                try:
                    self._load_generation()
                except Exception:
                    self.manifest = previous
                    raise
                return True
            except (FileNotFoundError, RuntimeError, ValueError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05)  # a writer replaced the files between our reads
        return False

    def _recover(self) -> None:
        """Undo what an interrupted add left behind: uncommitted rows and unreferenced files."""
        self.store.discard_uncommitted(self.manifest.generation)
        keep = set(self.manifest.files.values()) | {self.manifest.projection}
        for path in self.folder.iterdir():
            stale_vectors = path.name.startswith("vectors-") and path.suffix == ".faiss"
            stale_projection = path.name.startswith("projection.") and path.suffix == ".npz"
            if path.is_dir():
                continue  # not a file this index writes
            if (stale_vectors or stale_projection) and path.name not in keep or ".tmp" in path.name:
                path.unlink(missing_ok=True)

    # ---- properties -------------------------------------------------------------------------------
    @property
    def model(self) -> ModelInfo:
        return self.manifest.model

    @property
    def formats(self) -> tuple[str, ...]:
        return self.manifest.formats

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    def __len__(self) -> int:
        return self.manifest.count

    @property
    def staged(self) -> int:
        """Papers added since the last commit (not yet visible to readers)."""
        return self._staged

    @property
    def map_format(self) -> str:
        return next((f for f in MAP_FORMAT_PREFERENCE if f in self.formats), self.formats[0])

    # ---- writing ----------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise PermissionError(f"{self.folder} was opened read-only; open it with writable=True to change it")

    def check_model(self, fingerprint: str, dimension: int | None = None) -> None:
        """Vectors of another model are not comparable with the index's: refuse them."""
        if dimension is not None and int(dimension) != self.dimension:
            raise ValueError(f"vectors have dimension {dimension}, the index {self.folder} holds {self.dimension}")
        if fingerprint != self.model.fingerprint:
            raise ValueError(
                f"vectors come from a model with fingerprint {fingerprint[:12]}..., the index {self.folder} holds "
                f"vectors of {self.model.name} ({self.model.fingerprint[:12]}...)"
            )

    def train(self, sample_vectors: np.ndarray | dict[str, np.ndarray]) -> None:
        """Train a trained kind (IVF-Flat, IVF-PQ) on a sample (one array for all formats, or one per format); once."""
        self._require_writable()
        m = self.manifest
        if m.trained:
            raise ValueError(f"the {m.kind} index in {self.folder} is already trained (or needs no training)")
        samples = sample_vectors if isinstance(sample_vectors, dict) else {f: sample_vectors for f in m.formats}
        samples = {f: np.asarray(samples[f], dtype=np.float32) for f in m.formats if f in samples}
        for fmt in m.formats:
            sample = samples.get(fmt)
            if sample is None or sample.ndim != 2 or sample.shape[1] != self.dimension:
                shape = None if sample is None else sample.shape
                raise ValueError(f"{fmt} training sample must have shape (n, {self.dimension}), got {shape}")
        generation = m.generation + 1
        files, indexes = {}, {}
        sample = samples[self.map_format]
        params = faiss_io.lists_for_sample(m.params, min(len(s) for s in samples.values()))
        for fmt in m.formats:
            indexes[fmt] = faiss_io.new_index(m.kind, self.dimension, params)
            faiss_io.train(indexes[fmt], samples[fmt])
            files[fmt] = vector_file(fmt, generation)
            faiss_io.save(indexes[fmt], self.folder / files[fmt])
        projection = self._fit_projection(sample, generation) if m.projection is None else m.projection
        self._switch(m.next(m.count, files, trained=True, projection=projection, params=params), indexes)

    def add(
        self,
        papers: Sequence[Paper | dict],
        vectors_by_format: dict[str, np.ndarray],
        fingerprint: str,
        on_duplicate: str = "skip",
        commit: bool = True,
    ) -> AddReport:
        """Add papers and their vectors (one (n, dim) array per format of the index, in paper order).

        ``fingerprint`` names the model that made the vectors; it must be the index's. Papers whose id is
        already in the index are skipped (``on_duplicate="skip"``) or refused (``"error"``); an id twice
        in one call is refused. With ``commit=False`` the rows are staged until :meth:`commit`.
        """
        self._require_writable()
        m = self.manifest
        if not m.trained:
            raise ValueError(f"the {m.kind} index in {self.folder} must be trained first (PaperIndex.train)")
        if on_duplicate not in ("skip", "error"):
            raise ValueError(f"on_duplicate must be 'skip' or 'error', got {on_duplicate!r}")
        rows = [paper_row(p) for p in papers]
        missing = [f for f in m.formats if f not in vectors_by_format]
        extra = [f for f in vectors_by_format if f not in m.formats]
        if missing or extra:
            raise ValueError(f"the index holds formats {list(m.formats)}; got vectors for {sorted(vectors_by_format)}")
        arrays = {f: np.asarray(vectors_by_format[f], dtype=np.float32) for f in m.formats}
        for fmt, array in arrays.items():
            if array.ndim != 2 or array.shape[0] != len(rows):
                raise ValueError(f"{fmt} vectors have shape {array.shape}, expected ({len(rows)}, {self.dimension})")
            self.check_model(fingerprint, array.shape[1])
            if not np.isfinite(array).all():
                bad = int(np.argwhere(~np.isfinite(array).all(axis=1))[0, 0])
                raise ValueError(f"{fmt} vector of paper {rows[bad].paper_id} is not finite")
        seen: set[str] = set()
        for row in rows:
            if row.paper_id in seen:
                raise ValueError(f"paper id {row.paper_id} appears twice in one add")
            seen.add(row.paper_id)
        existing = self.store.existing_ids([r.paper_id for r in rows])
        if existing and on_duplicate == "error":
            raise ValueError(f"{len(existing)} paper ids are already in the index, e.g. {sorted(existing)[0]}")
        keep = [i for i, r in enumerate(rows) if r.paper_id not in existing]
        rows = [rows[i] for i in keep]
        arrays = {f: a[keep] for f, a in arrays.items()}
        generation = m.generation + 1
        if rows:
            start = max(self.store.max_row_id(), -1) + 1
            row_ids = np.arange(start, start + len(rows), dtype=np.int64)
            if self._projection is None and m.projection is None and len(rows) >= PROJECTION_MIN_VECTORS:
                name = self._fit_projection(arrays[self.map_format], generation)
                self.manifest = m = _with_projection(m, name)
                self._projection = MapProjection.load(self.folder / name)
            xy, clusters = self._projection.apply(arrays[self.map_format]) if self._projection else (None, None)
            try:
                self.store.insert(rows, row_ids, arrays, xy, clusters, generation)
                for fmt in m.formats:
                    self._write_units(fmt, row_ids, arrays[fmt])
                    faiss_io.add(self._indexes[fmt], arrays[fmt], row_ids)
            except BaseException:
                self._rollback()
                raise
            self._staged += len(rows)
        report = AddReport(len(rows), len(existing), generation, m.count + self._staged)
        if commit:
            self.commit()
        return report

    def commit(self) -> None:
        """Write the staged rows' FAISS files and switch ``index.json`` to them (atomic)."""
        self._require_writable()
        if not self._staged and self.manifest.projection == read_manifest(self.folder).projection:
            return
        m = self.manifest
        generation = m.generation + 1
        files = {fmt: vector_file(fmt, generation) for fmt in m.formats}
        try:
            self._sync_units()  # before the manifest that refers to the new rows
            params = self._params_for(m.count + self._staged)
            for fmt, name in files.items():
                faiss_io.save(self._indexes[fmt], self.folder / name)
            self._switch(m.next(m.count + self._staged, files, params=params))
        except BaseException:
            self._rollback()
            raise
        self._staged = 0
        self.store.checkpoint()

    def _params_for(self, count: int) -> dict[str, Any]:
        """The manifest's parameters, recalibrated when the index first reaches the minimum size or doubled."""
        params = self.manifest.params
        if self.manifest.kind not in faiss_io.SEARCH_KNOBS or count < CALIBRATION_MIN_VECTORS:
            return params
        last = int(params.get("calibration", {}).get("vectors", 0))
        if last and count < 2 * last:
            return params
        knob, _ = faiss_io.SEARCH_KNOBS[self.manifest.kind]
        results = [self.calibrate(fmt, float(params.get("recall_target", RECALL_TARGET))) for fmt in self.formats]
        chosen = max(results, key=lambda r: r[knob])  # one setting serves every format
        for fmt in self.formats:
            faiss_io.configure(self._indexes[fmt], self.manifest.kind, {**params, knob: chosen[knob]})
        return {**params, knob: chosen[knob], "calibration": {**chosen, "vectors": count}}

    def set_held_out_queries(self, paper_ids: Sequence[str], query_vectors: np.ndarray) -> None:
        """Query vectors (e.g. indexed papers' titles embedded as search queries) for calibration.

        Each query's own paper is left out of both the exact and the approximate results, so it measures
        what a query about a paper that is *not* indexed gets: an honest recall for search, unlike indexed
        vectors as queries, whose near-copies in the index (duplicates, versions) make recall look higher.
        Written atomically into the folder; later calibrations use it too.
        """
        self._require_writable()
        matrix = np.asarray(query_vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape != (len(paper_ids), self.dimension):
            wanted = (len(paper_ids), self.dimension)
            raise ValueError(f"held-out queries must have shape {wanted}, got {matrix.shape}")
        ids = np.asarray(list(paper_ids), dtype=str)
        write_atomic(self.folder / HELD_OUT_QUERIES, lambda handle: np.savez(handle, paper_ids=ids, vectors=matrix))

    def _held_out_queries(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(vectors, own row ids) of the held-out queries whose papers are in the index, or None."""
        path = self.folder / HELD_OUT_QUERIES
        if not path.is_file():
            return None
        with np.load(path) as data:
            paper_ids, matrix = [str(x) for x in data["paper_ids"]], data["vectors"].astype(np.float32)
        found = self.store.rows_by_paper_id(paper_ids, self.manifest.generation + 1)  # staged rows count
        keep = [i for i, paper_id in enumerate(paper_ids) if paper_id in found]
        if not keep:
            return None
        return matrix[keep], np.asarray([found[paper_ids[i]]["row_id"] for i in keep], dtype=np.int64)

    def exact_top(self, format: str, queries: np.ndarray, k: int) -> np.ndarray:
        """Row ids of the exact top-k by cosine over every stored vector (a scan of SQLite, blocked matmuls)."""
        unit = faiss_io.normalise(queries)
        best_s = np.full((len(unit), 0), -np.inf, np.float32)
        best_i = np.full((len(unit), 0), -1, np.int64)
        for ids, matrix in self._iter_units(format):
            scores = unit @ matrix.T
            all_s = np.concatenate([best_s, scores], axis=1)
            all_i = np.concatenate([best_i, np.broadcast_to(ids, scores.shape)], axis=1)
            keep = np.argpartition(-all_s, min(k, all_s.shape[1]) - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(all_s, keep, axis=1)
            best_i = np.take_along_axis(all_i, keep, axis=1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        out = np.full((len(unit), k), -1, np.int64)
        out[:, : best_i.shape[1]] = np.take_along_axis(best_i, order, axis=1)
        return out

    def _iter_units(self, format: str, batch: int = 50_000):
        """(row ids, unit vectors) over every stored row of ``format``: the unit-vector file, else SQLite."""
        if self.manifest.unit_vectors.get(format) is None:
            for ids, matrix in self.store.iter_vectors(format, self.dimension, batch):
                yield ids, faiss_io.normalise(matrix)
            return
        top = self.store.max_row_id()
        for start in range(0, top + 1, batch):
            ids = np.arange(start, min(top + 1, start + batch), dtype=np.int64)
            yield ids, self._unit_rows(format, ids)

    def calibrate(self, format: str, target: float = RECALL_TARGET, queries: int = CALIBRATION_QUERIES, seed: int = 0):
        """The cheapest efSearch (HNSW) / nprobe (IVF) whose recall@10 reaches ``target`` + a margin.

        Two query sets, the knob chosen is the larger one's: indexed vectors (recommendations' queries)
        with a margin, and the held-out queries of :meth:`set_held_out_queries` where there are any
        (search's queries) with a small margin; each query's own row is left out of both result lists.
        Ground truth is an exact scan of the stored vectors. Returns ``{knob: value, "recall_at_10": r,
        "queries": n, ...}`` (the largest value tried, and the recall it reached, if none reaches it).
        """
        kind = self.manifest.kind
        knob, values = faiss_io.SEARCH_KNOBS[kind]
        rng = np.random.default_rng(seed)
        top = self.store.max_row_id()
        candidates = rng.choice(top + 1, size=min(top + 1, 2 * queries), replace=False)
        stored = self.store.vectors(format, [int(r) for r in candidates], self.dimension)
        rows = np.asarray([r for r in candidates if int(r) in stored][:queries], dtype=np.int64)
        sets = {"indexed": (np.stack([stored[int(r)] for r in rows]), rows, faiss_io.RECALL_MARGINS[kind])}
        held_out = self._held_out_queries() if format == self.map_format else None
        if held_out is not None:
            sets["held_out"] = (*held_out, faiss_io.HELD_OUT_MARGIN)
        k = CALIBRATION_K
        started = time.perf_counter()
        everything = np.concatenate([matrix for matrix, _, _ in sets.values()])
        truth_all = self.exact_top(format, everything, k + 1)
        exact_s = time.perf_counter() - started
        result: dict[str, Any] = {}
        per_set: dict[str, float] = {}
        offset = 0
        for name, (matrix, own, margin) in sets.items():
            truth = _without_self(truth_all[offset : offset + len(matrix)], own, k)
            offset += len(matrix)
            chosen: dict[str, Any] = {}
            for value in values:
                if kind in faiss_io.IVF_KINDS and value > faiss_io.faiss_ivf_lists(self._indexes[format]):
                    break
                _, found = self._search_rows(format, matrix, k + 1, faiss_io.search_parameters(kind, value))
                found = _without_self(found, own, k)
                recall = float(np.mean([len(set(f) & set(t) - {-1}) / k for f, t in zip(found, truth, strict=True)]))
                chosen = {knob: int(value), "recall_at_10": round(recall, 4)}
                if recall >= target + margin:
                    break
            if not result or chosen[knob] > result[knob]:
                result = {**chosen, "target": target, "queries": len(matrix), "set": name}
            per_set[f"recall_at_10_{name}"] = chosen["recall_at_10"]  # at that set's own choice
        timings = []
        parameters = faiss_io.search_parameters(kind, result[knob])
        threads = faiss_io.set_threads(1)  # as the server searches: one query per call, one thread
        try:
            for query in sets["indexed"][0][:100]:
                began = time.perf_counter()
                self._search_rows(format, query[None, :], k, parameters)
                timings.append((time.perf_counter() - began) * 1000)
        finally:
            faiss_io.set_threads(threads)
        result.update(per_set, p50_ms=round(float(np.median(timings)), 3), exact_s=round(exact_s, 2))
        return result

    def _switch(self, manifest: IndexManifest, indexes: dict[str, Any] | None = None) -> None:
        """Commit ``manifest``; the in-memory indexes already hold its vectors (or are given)."""
        old = self.manifest
        write_manifest(self.folder, manifest)  # the commit point
        self.manifest = manifest
        for fmt, name in old.files.items():
            if manifest.files.get(fmt) != name:
                (self.folder / name).unlink(missing_ok=True)
        if indexes is not None:
            self._indexes = indexes
        if manifest.projection and (self._projection is None or manifest.projection != old.projection):
            self._projection = MapProjection.load(self.folder / manifest.projection)

    def _rollback(self) -> None:
        self.manifest = read_manifest(self.folder)
        self.store.discard_uncommitted(self.manifest.generation)
        self._recover()
        self._staged = 0
        self._load_generation()

    def _fit_projection(self, vectors: np.ndarray, generation: int) -> str:
        name = f"projection.g{generation:06d}.npz"
        MapProjection.fit(vectors).save(self.folder / name)
        return name

    # ---- reading ----------------------------------------------------------------------------------
    def search(self, format: str, query_vectors: np.ndarray, k: int) -> list[list[SearchHit]]:
        """Top-k papers by cosine similarity for each query vector (best first)."""
        if format not in self._indexes:
            raise ValueError(f"the index holds formats {list(self.formats)}, not {format!r}")
        queries = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
        if queries.shape[1] != self.dimension:
            raise ValueError(f"query vectors have dimension {queries.shape[1]}, the index holds {self.dimension}")
        scores, ids = self._search_rows(format, queries, k)
        records = self.store.rows_by_row_id(sorted({int(i) for i in ids.ravel() if i >= 0}), self.manifest.generation)
        return [
            [
                SearchHit(records[int(i)]["paper_id"], int(i), float(s), records[int(i)])
                for s, i in zip(row_s, row_i, strict=True)
                if int(i) in records
            ]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def _search_rows(self, format: str, queries: np.ndarray, k: int, parameters=None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row ids) of the top k; compressed kinds fetch more candidates and re-score them exactly."""
        rerank = int(self.manifest.params.get("rerank", 1)) if self.manifest.kind in faiss_io.RERANKED else 1
        if rerank <= 1:
            return faiss_io.search(self._indexes[format], queries, k, parameters)
        wanted = max(k, min(k * rerank, faiss_io.RERANK_MAX))
        _, ids = faiss_io.search(self._indexes[format], queries, wanted, parameters)
        return self._rerank(format, queries, ids, k)

    def _rerank(self, format: str, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine over the approximate candidates: the memory-mapped unit vectors (SQLite's blobs for
        an index without them: 200 rows took 12 ms there, against 0.1 ms from the map)."""
        unit_queries = faiss_io.normalise(queries)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        if self.manifest.unit_vectors.get(format) is None:
            stored = self.store.vectors(format, [int(i) for i in np.unique(ids[ids >= 0])], self.dimension)
        for q, row in enumerate(ids):
            candidates = row[row >= 0]
            if self.manifest.unit_vectors.get(format) is None:
                candidates = np.asarray([i for i in candidates if int(i) in stored], dtype=np.int64)
                if not len(candidates):
                    continue
                matrix = faiss_io.normalise(np.stack([stored[int(i)] for i in candidates]))
            elif len(candidates):
                matrix = self._unit_rows(format, candidates)
            else:
                continue
            exact = matrix @ unit_queries[q]
            order = np.argsort(-exact, kind="stable")[:k]
            out_s[q, : len(order)] = exact[order]
            out_i[q, : len(order)] = candidates[order]
        return out_s, out_i

    def resolve(self, ids: Sequence[str]) -> list[int | None]:
        """Row ids for paper ids, S2-style prefixed ids (``DOI:``, ``ArXiv:``, ``ACL:``, ``CorpusId:``) or None."""
        generation = self.manifest.generation
        direct = self.store.rows_by_paper_id(list(ids), generation)
        out: list[int | None] = []
        for paper_id in ids:
            if paper_id in direct:
                out.append(int(direct[paper_id]["row_id"]))
                continue
            prefixed = split_prefixed_id(paper_id)
            if prefixed is None:
                out.append(None)
            elif prefixed[0] == "CorpusId":
                row_id = int(prefixed[1]) if prefixed[1].isdigit() and len(prefixed[1]) < 19 else None
                found = self.store.rows_by_row_id([row_id], generation) if row_id is not None else {}
                out.append(row_id if row_id in found else None)
            else:
                out.append(self.store.row_id_for_external(prefixed[0], prefixed[1], generation))
        return out

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Metadata records in request order (None for unknown ids)."""
        row_ids = self.resolve(ids)
        return self.get_rows(row_ids)

    def get_rows(self, row_ids: Sequence[int | None]) -> list[dict[str, Any] | None]:
        found = self.store.rows_by_row_id([r for r in row_ids if r is not None], self.manifest.generation)
        return [found.get(r) if r is not None else None for r in row_ids]

    def vectors(self, format: str, row_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The vectors as the encoder produced them (not normalised), by row id."""
        if format not in self.formats:
            raise ValueError(f"the index holds formats {list(self.formats)}, not {format!r}")
        return self.store.vectors(format, row_ids, self.dimension)

    def map_points(self, limit: int) -> list[dict[str, Any]]:
        return self.store.map_points(self.manifest.generation, limit)


def _without_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The first k ids of each row other than the query's own row id (-1 padded)."""
    out = np.full((len(found), k), -1, np.int64)
    for i, (ids, own) in enumerate(zip(found, rows, strict=True)):
        kept = [int(x) for x in ids if x != own and x >= 0][:k]
        out[i, : len(kept)] = kept
    return out


def _with_projection(manifest: IndexManifest, name: str) -> IndexManifest:
    from dataclasses import replace

    return replace(manifest, projection=name)


def _lock_writer(folder: Path):
    """One writer per index folder (an advisory lock, released when the process ends)."""
    handle = open(folder / WRITER_LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(f"another process is writing the index in {folder}") from None
    return handle
