"""What produced an embeddings file, stored in its Parquet schema metadata (key ``sciembed``).

A reader (``sciembed info FILE.parquet``, pyarrow, DuckDB's ``parquet_kv_metadata``) can tell the
model, its fingerprint, the format and the vector space of a file; jobs refuse to put vectors of
different spaces into one file. No timestamp: a resumed job writes the same bytes as an
uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"sciembed"
# Two files hold vectors of one space when these agree (the sciembed version and the requested
# format name may differ: the fingerprint and the adapter decide the vectors).
SPACE_FIELDS = ("fingerprint", "adapter", "dimension", "normalized")


@dataclass(frozen=True)
class EmbeddingMetadata:
    """model: display name; fingerprint: the model's sha256 (weights + settings); format: the requested
    format; adapter: the adapter that ran (``base`` for a model without adapters); dimension: vector
    length; normalized: L2-normalised vectors (None: unknown); sciembed_version: the writer's version."""

    model: str
    fingerprint: str
    format: str
    adapter: str
    dimension: int
    normalized: bool | None
    sciembed_version: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmbeddingMetadata:
        known = {f.name for f in fields(cls)}
        return cls(**{k: data.get(k) for k in known})

    def schema_metadata(self) -> dict[bytes, bytes]:
        return {METADATA_KEY: json.dumps(self.to_json(), sort_keys=True).encode()}

    def differences(self, other: EmbeddingMetadata) -> list[str]:
        """The space fields in which ``other`` differs, as ``name: ours != theirs``."""
        return [
            f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
            for name in SPACE_FIELDS
            if getattr(self, name) != getattr(other, name)
        ]


def metadata_for(encoder: Any, format: str) -> EmbeddingMetadata:
    """The metadata of vectors that ``encoder`` computes for ``format`` (a canonical format name)."""
    from .. import __version__

    adapter = encoder.adapter_for_format(format) if hasattr(encoder, "adapter_for_format") else format
    config = getattr(encoder, "config", None)
    normalized = getattr(config, "normalize", None)
    return EmbeddingMetadata(
        model=str(encoder.name),
        fingerprint=str(encoder.fingerprint),
        format=format,
        adapter=adapter or "base",
        dimension=int(encoder.dimension),
        normalized=None if normalized is None else bool(normalized),
        sciembed_version=__version__,
    )


def metadata_of_schema(schema: pa.Schema) -> EmbeddingMetadata | None:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        return None
    return EmbeddingMetadata.from_json(json.loads(raw))


def read_metadata(path: str | Path) -> EmbeddingMetadata | None:
    """The metadata of an embeddings file (None: written without, e.g. by an older sciembed)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
    return metadata_of_schema(schema)


def require_same_space(expected: EmbeddingMetadata, found: EmbeddingMetadata | None, where: str | Path) -> None:
    """Raise ``ValueError`` unless ``found`` describes vectors of ``expected``'s space."""
    if found is None:
        raise ValueError(f"{where}: no sciembed metadata; cannot tell which model wrote it")
    differences = expected.differences(found)
    if differences:
        raise ValueError(f"{where}: embeddings of another model or format ({'; '.join(differences)})")
