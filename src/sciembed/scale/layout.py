"""The output folder of a distributed embedding job, and the files that make it trustworthy.

```
OUT_DIR/
  manifest.json                     # written last, atomically: the single source of truth
  data/<unit>-<chunk>.parquet       # embeddings (paper_id string, embedding fixed-size list float32)
  _work/job.json                    # the job's identity (model fingerprint, format, options)
  _work/units/<unit>.json           # one finished input shard: its input identity, outputs, counts
  _work/ids/<unit>-<chunk>.parquet  # ids and text digests of a data file (for the duplicate pass)
  _work/dedup.json                  # duplicate ids across shards and which occurrences were dropped
```

Every file is written under a temporary name and renamed into place, so a file that exists is
complete. A data file exists only once its chunk is finished; a unit record only once all its
chunks are; the manifest only once every unit and the duplicate pass are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_bytes

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "sciembed-sharded-embeddings/1"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and a rename (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def write_json_atomic(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def unit_name(path: Path) -> str:
    """A file-name-safe, stable name for an input shard: its stem and a hash of its full path."""
    resolved = str(path.resolve())
    stem = path.name
    for suffix in (".gz", ".jsonl", ".json", ".parquet", ".pq"):
        stem = stem.removesuffix(suffix)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60] or "shard"
    return f"{stem}-{hashlib.sha256(resolved.encode()).hexdigest()[:10]}"


def input_identity(path: Path) -> dict[str, Any]:
    """What pins an input shard: a finished unit is reused only while this is unchanged."""
    stat = os.stat(path)
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass(frozen=True)
class OutputLayout:
    """Paths inside an output folder."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def work(self) -> Path:
        return self.root / "_work"

    @property
    def job(self) -> Path:
        return self.work / "job.json"

    @property
    def dedup(self) -> Path:
        return self.work / "dedup.json"

    def unit_record(self, unit: str) -> Path:
        return self.work / "units" / f"{unit}.json"

    def data_file(self, unit: str, chunk: int) -> Path:
        return self.data / f"{unit}-{chunk:05d}.parquet"

    def ids_file(self, unit: str, chunk: int) -> Path:
        return self.work / "ids" / f"{unit}-{chunk:05d}.parquet"

    def finished_units(self) -> dict[str, dict[str, Any]]:
        folder = self.work / "units"
        if not folder.is_dir():
            return {}
        return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}

    def claim(self, job: dict[str, Any]) -> bool:
        """Pin the folder to ``job``; True if it already held the same job (a resume).

        An output written with another model, format or options is an error, never mixed in.
        """
        if self.job.is_file():
            previous = json.loads(self.job.read_text())
            if previous != job:
                differs = sorted(k for k in set(job) | set(previous) if previous.get(k) != job.get(k))
                raise ValueError(
                    f"{self.root} holds embeddings of another job (differs in: {', '.join(differs)}); "
                    "use a new output folder or the same model, format and options"
                )
            return True
        if self.root.exists() and any(self.root.iterdir()):
            raise ValueError(f"{self.root} exists and is not a sciembed sharded-embeddings folder")
        write_json_atomic(self.job, job)
        return False
