"""The index folder's manifest (``index.json``) and file names: the contract other writers follow.

docs/SERVING.md describes the layout; ``sciembed.scale`` writes the same folders.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_bytes

LAYOUT_VERSION = 1
MANIFEST = "index.json"
DATABASE = "papers.sqlite"
KINDS = ("flat", "hnsw", "ivfflat", "ivfpq", "ivfpqfs")
# Exact search up to this many vectors; IVF-PQ fast scan with exact re-ranking (trained, nprobe calibrated)
# beyond: on 1M vectors it reached the recall of IVF-Flat at a fraction of its latency and memory. IVF-Flat,
# IVF-PQ and HNSW are there on request (HNSW's build on 2 cores is 10-20x slower than IVF's;
# docs/PERFORMANCE.md).
FLAT_MAX = 50_000


def unit_vector_file(format: str) -> str:
    """Append-only, one file per format for all generations: rows past the committed ones are ignored."""
    return f"unit-{format}.f32"


def vector_file(format: str, generation: int) -> str:
    """One FAISS file per format and generation; a commit switches generations atomically."""
    return f"vectors-{format}.g{generation:06d}.faiss"


@dataclass(frozen=True)
class ModelInfo:
    """Which encoder made the vectors: they are only comparable with vectors of the same fingerprint."""

    name: str
    fingerprint: str
    dimension: int
    source: str | None = None  # what to pass to sciembed.load() to get this model back (folder or name)


@dataclass(frozen=True)
class IndexManifest:
    model: ModelInfo
    formats: tuple[str, ...]
    kind: str
    params: dict[str, Any]
    metric: str = "cosine"  # vectors are L2-normalised before FAISS sees them; scores are inner products
    generation: int = 0
    count: int = 0
    trained: bool = True
    files: dict[str, str] = field(default_factory=dict)  # format -> FAISS file of this generation
    projection: str | None = None  # file with the 2-D map projection (npz), if one was fitted
    version: int = LAYOUT_VERSION
    # format -> file of unit-length float32 rows at offset row_id x dimension (exact re-ranking and the
    # calibration's exact scan, memory-mapped and shared by every process); empty for older indexes
    unit_vectors: dict[str, str] = field(default_factory=dict)

    @property
    def dimension(self) -> int:
        return self.model.dimension

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["formats"] = list(self.formats)
        data["dimension"] = self.dimension
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexManifest:
        version = int(data.get("version", 0))
        if version != LAYOUT_VERSION:
            raise ValueError(f"index layout version {version} is not supported (this sciembed reads {LAYOUT_VERSION})")
        model = ModelInfo(**data["model"])
        return cls(
            model=model,
            formats=tuple(data["formats"]),
            kind=data["kind"],
            params=dict(data.get("params", {})),
            metric=data.get("metric", "cosine"),
            generation=int(data["generation"]),
            count=int(data["count"]),
            trained=bool(data.get("trained", True)),
            files=dict(data.get("files", {})),
            projection=data.get("projection"),
            version=version,
            unit_vectors=dict(data.get("unit_vectors", {})),
        )

    def next(self, count: int, files: dict[str, str], **changes: Any) -> IndexManifest:
        return replace(self, generation=self.generation + 1, count=count, files=files, **changes)


def read_manifest(folder: Path) -> IndexManifest:
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a sciembed index (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    try:
        return IndexManifest.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: missing or bad field {exc}") from None


def write_manifest(folder: Path, manifest: IndexManifest) -> None:
    """The commit point of every change to an index."""
    atomic_write_bytes(folder / MANIFEST, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode())


def choose_kind(kind: str, expected_size: int) -> str:
    if kind == "auto":
        if expected_size <= FLAT_MAX:
            return "flat"
        return "ivfpqfs"
    if kind not in KINDS:
        raise ValueError(f"index kind must be auto, {', '.join(KINDS)}; got {kind!r}")
    return kind
