"""The final pass: ids that occur in more than one input shard.

Memory is 8 bytes per id (one 64-bit hash each, sorted once); only the ids whose hash repeats are
then looked up again and compared exactly, so hash collisions never count as duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Occurrence:
    file_index: int  # position of the ids file in input order (shard, then chunk)
    digest: int  # text digest: equal for a repeated paper, different for a reused id


@dataclass(frozen=True)
class Duplicate:
    paper_id: str
    occurrences: tuple[Occurrence, ...]  # in input order; the first is kept

    @property
    def same_text(self) -> bool:
        return len({o.digest for o in self.occurrences}) == 1


def _hashes(ids: np.ndarray) -> np.ndarray:
    from pandas.util import hash_array  # pandas comes with ray[data]

    return hash_array(ids, categorize=False)


def _ids(path: Path, columns: Sequence[str] = ("paper_id",)):
    return pq.read_table(path, columns=list(columns))


def find_duplicates(ids_files: Sequence[Path]) -> tuple[list[Duplicate], int]:
    """Ids found in more than one of ``ids_files`` (given in input order); also the total id count."""
    parts = [_hashes(_ids(p).column("paper_id").to_numpy(zero_copy_only=False)) for p in ids_files]
    total = sum(len(p) for p in parts)
    if total == 0:
        return [], 0
    ordered = np.sort(np.concatenate(parts))
    del parts
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    if len(repeated) == 0:
        return [], total
    found: dict[str, list[Occurrence]] = {}
    for index, path in enumerate(ids_files):
        table = _ids(path, ("paper_id", "digest"))
        ids = table.column("paper_id").to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(np.isin(_hashes(ids), repeated))
        digests = table.column("digest").to_numpy()
        for row in rows:
            found.setdefault(str(ids[row]), []).append(Occurrence(index, int(digests[row])))
    duplicates = [Duplicate(pid, tuple(occ)) for pid, occ in found.items() if len(occ) > 1]
    duplicates.sort(key=lambda d: (d.occurrences[0].file_index, d.paper_id))
    return duplicates, total
