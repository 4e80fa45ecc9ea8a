"""Chunked, resumable Parquet output: ``paper_id`` (string) and ``embedding`` (fixed-size list of float32).

Each finished chunk is written to ``OUTPUT.parts/part-NNNNN.parquet`` (atomically, via rename) next to
a manifest that pins the job. A killed job that is run again with the same settings keeps the finished
parts, computes only the rest, and at the end streams all parts into OUTPUT in order, so the file is
identical to the one an uninterrupted run writes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"


def embedding_schema(dim: int, metadata: dict[bytes, bytes] | None = None) -> pa.Schema:
    """``metadata``: the file's key-value metadata (see :mod:`sciembed.embed.metadata`)."""
    return pa.schema([("paper_id", pa.string()), ("embedding", pa.list_(pa.float32(), dim))], metadata=metadata)


def embedding_table(ids: Sequence[str], vectors: np.ndarray, metadata: dict[bytes, bytes] | None = None) -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    return pa.Table.from_arrays(
        [pa.array(list(ids), type=pa.string()), column], schema=embedding_schema(vectors.shape[1], metadata)
    )


class ResumableParquetWriter:
    """Parts directory + manifest; ``job`` is any JSON-able description that must match to resume."""

    def __init__(self, output: str | Path, job: dict[str, Any], metadata: dict[bytes, bytes] | None = None):
        self.output = Path(output)
        self.metadata = metadata  # written into every part and the output
        self.parts = self.output.with_name(self.output.name + ".parts")
        self.job = job
        self.resumed_chunks = self._prepare()

    def _prepare(self) -> int:
        manifest = self.parts / MANIFEST
        if manifest.is_file():
            previous = json.loads(manifest.read_text())
            if previous == self.job:
                return len(self.finished_chunks())
            if not self.finished_chunks():
                shutil.rmtree(self.parts)  # nothing finished under the old settings: start afresh
                return self._prepare()
            raise ValueError(
                f"{self.parts} holds an unfinished job with other settings; remove it or rerun the same command "
                f"(differs in: {sorted(k for k in self.job if previous.get(k) != self.job[k])})"
            )
        if self.parts.exists():
            shutil.rmtree(self.parts)
        self.parts.mkdir(parents=True)
        _write_atomic(manifest, json.dumps(self.job, indent=2, sort_keys=True).encode())
        return 0

    def part_path(self, index: int) -> Path:
        return self.parts / f"part-{index:05d}.parquet"

    def finished_chunks(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.parts.glob("part-*.parquet")}

    def is_done(self, index: int) -> bool:
        return self.part_path(index).is_file()

    def write_chunk(self, index: int, ids: Sequence[str], vectors: np.ndarray) -> None:
        path = self.part_path(index)
        tmp = path.with_suffix(".tmp")
        pq.write_table(embedding_table(ids, vectors, self.metadata), tmp)
        os.replace(tmp, path)

    def finish(self, num_chunks: int, dim: int) -> int:
        """Stream parts 0..num_chunks-1 into the output file; returns the number of rows."""
        missing = [i for i in range(num_chunks) if not self.is_done(i)]
        if missing:
            raise RuntimeError(f"{self.parts}: chunks {missing[:5]} are missing")
        tmp = self.output.with_name(self.output.name + ".tmp")
        rows = 0
        schema = embedding_schema(dim, self.metadata)
        with pq.ParquetWriter(tmp, schema) as writer:
            for index in range(num_chunks):
                table = pq.read_table(self.part_path(index))
                writer.write_table(table.cast(schema))
                rows += table.num_rows
        os.replace(tmp, self.output)
        shutil.rmtree(self.parts)
        return rows


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read an embeddings file back: ids and a float32 matrix."""
    table = pq.read_table(path)
    ids = table.column("paper_id").to_pylist()
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
    return ids, vectors
