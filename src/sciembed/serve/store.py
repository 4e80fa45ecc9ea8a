"""Paper metadata and raw vectors in SQLite (WAL): one row per paper, keyed by an integer row id.

The row id is also the id of the paper's vector in every FAISS index. A row belongs to the generation
that added it; readers only see rows of committed generations (``generation <= manifest.generation``),
so an add that crashed before its manifest was written is invisible and is deleted by the next writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .metadata import PaperRow, normalise_external_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
    row_id INTEGER PRIMARY KEY,          -- FAISS vector id; exposed as S2 corpusId
    paper_id TEXT NOT NULL UNIQUE,       -- exposed as S2 paperId
    title TEXT,
    abstract TEXT,
    year INTEGER,
    venue TEXT,
    publication_date TEXT,
    authors TEXT NOT NULL DEFAULT '[]',          -- JSON list of names
    fields_of_study TEXT NOT NULL DEFAULT '[]',  -- JSON list
    external_ids TEXT NOT NULL DEFAULT '{}',     -- JSON object, S2 externalIds keys
    url TEXT,
    extra TEXT NOT NULL DEFAULT '{}',            -- JSON object: the input record's other fields
    map_x REAL,
    map_y REAL,
    cluster INTEGER,
    generation INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS external_ids (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    row_id INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vectors (
    format TEXT NOT NULL,
    row_id INTEGER NOT NULL,
    vector BLOB NOT NULL,                -- float32, little endian, as the encoder produced it
    PRIMARY KEY (format, row_id)
) WITHOUT ROWID;
"""
COLUMNS = (
    "row_id, paper_id, title, abstract, year, venue, publication_date, authors, fields_of_study, "
    "external_ids, url, extra, map_x, map_y, cluster"
)
JSON_COLUMNS = ("authors", "fields_of_study", "external_ids", "extra")
SQL_VARIABLES = 900  # under SQLite's default limit of host parameters per statement
# Page cache of each thread's read connection: a server's hot rows stay in it (SQLite's default, 2 MB,
# held ~500 of the 4 KB pages; 10 random hot rows took 0.16-0.19 ms with it, 0.11 ms with 16 MB)
READER_CACHE_KIB = 16_384


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
    db.row_factory = sqlite3.Row
    return db


def _chunks(values: Sequence[Any], size: int = SQL_VARIABLES) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _json_column(text: str) -> Any:
    # most rows' lists and objects are empty (the 1M index: authors '[]' on average): no parser for those
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return json.loads(text)


def record(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    for name in JSON_COLUMNS:
        data[name] = _json_column(data[name])
    return data


class PaperStore:
    """Thread-safe access to ``papers.sqlite``: one connection with a lock around it for writes, and for
    reads either the same (a writer's store) or one read connection per thread (``thread_reads``: a server's
    store, so that concurrent requests' row fetches do not queue behind one lock)."""

    def __init__(self, path: Path, readonly: bool = False, thread_reads: bool = False):
        self.path = path
        self.db = connect(path, readonly)
        self.lock = threading.Lock()
        self._readonly = readonly
        self._thread_reads = thread_reads
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []  # every thread's read connection, closed by close()

    def close(self) -> None:
        with self.lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self.db.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection to read with: this thread's own (opened on first use), or the shared one, locked."""
        if not self._thread_reads:
            with self.lock:
                yield self.db
            return
        db = getattr(self._local, "db", None)
        if db is None:
            target = f"file:{self.path}?mode=ro" if self._readonly else str(self.path)
            # used by this thread only; closed by close() from another, hence check_same_thread=False
            db = sqlite3.connect(target, uri=self._readonly, check_same_thread=False)
            db.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            db.row_factory = sqlite3.Row
            self._local.db = db
            with self.lock:
                self._readers.append(db)
        yield db

    # ---- reads (committed generations only) -------------------------------------------------------
    def max_row_id(self) -> int:
        with self._reading() as db:
            value = db.execute("SELECT MAX(row_id) FROM papers").fetchone()[0]
        return -1 if value is None else int(value)

    def count(self, generation: int) -> int:
        with self._reading() as db:
            return int(db.execute("SELECT COUNT(*) FROM papers WHERE generation <= ?", (generation,)).fetchone()[0])

    def existing_ids(self, paper_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._reading() as db:
            for chunk in _chunks(list(paper_ids)):
                marks = ",".join("?" * len(chunk))
                found.update(
                    r[0] for r in db.execute(f"SELECT paper_id FROM papers WHERE paper_id IN ({marks})", chunk)
                )
        return found

    def rows_by_paper_id(self, paper_ids: Sequence[str], generation: int) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self._reading() as db:
            for chunk in _chunks(list(paper_ids)):
                marks = ",".join("?" * len(chunk))
                query = f"SELECT {COLUMNS} FROM papers WHERE paper_id IN ({marks}) AND generation <= ?"
                for row in db.execute(query, (*chunk, generation)):
                    out[row["paper_id"]] = record(row)
        return out

    def rows_by_row_id(self, row_ids: Sequence[int], generation: int) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        with self._reading() as db:
            for chunk in _chunks([int(r) for r in row_ids]):
                marks = ",".join("?" * len(chunk))
                query = f"SELECT {COLUMNS} FROM papers WHERE row_id IN ({marks}) AND generation <= ?"
                for row in db.execute(query, (*chunk, generation)):
                    out[int(row["row_id"])] = record(row)
        return out

    def row_id_for_external(self, kind: str, value: str, generation: int) -> int | None:
        with self._reading() as db:
            row = db.execute(
                "SELECT e.row_id FROM external_ids e JOIN papers p ON p.row_id = e.row_id "
                "WHERE e.kind = ? AND e.value = ? AND p.generation <= ?",
                (kind, normalise_external_id(kind, value), generation),
            ).fetchone()
        return None if row is None else int(row[0])

    def vectors(self, format: str, row_ids: Sequence[int], dimension: int) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        with self._reading() as db:
            for chunk in _chunks([int(r) for r in row_ids]):
                marks = ",".join("?" * len(chunk))
                query = f"SELECT row_id, vector FROM vectors WHERE format = ? AND row_id IN ({marks})"
                for row_id, blob in db.execute(query, (format, *chunk)):
                    out[int(row_id)] = np.frombuffer(blob, dtype="<f4", count=dimension).astype(np.float32)
        return out

    def iter_vectors(self, format: str, dimension: int, batch: int = 50_000) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """(row ids, (n, dimension) float32 matrix) over every stored vector of ``format``, in row-id order."""
        last = -1
        while True:
            with self._reading() as db:
                rows = db.execute(
                    "SELECT row_id, vector FROM vectors WHERE format = ? AND row_id > ? ORDER BY row_id LIMIT ?",
                    (format, last, batch),
                ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dimension)
            last = int(ids[-1])
            yield ids, matrix.astype(np.float32)

    def map_points(self, generation: int, limit: int) -> list[dict[str, Any]]:
        """An evenly spread sample of at most ``limit`` map points (row ids are spread over the corpus)."""
        with self._reading() as db:
            total = db.execute(
                "SELECT COUNT(*) FROM papers WHERE generation <= ? AND map_x IS NOT NULL", (generation,)
            ).fetchone()[0]
            step = max(1, -(-int(total) // max(1, limit)))
            rows = db.execute(
                "SELECT row_id, paper_id, title, year, fields_of_study, map_x, map_y, cluster FROM papers "
                "WHERE generation <= ? AND map_x IS NOT NULL AND row_id % ? = 0 ORDER BY row_id LIMIT ?",
                (generation, step, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    # ---- writes -----------------------------------------------------------------------------------
    def insert(
        self,
        rows: Sequence[PaperRow],
        row_ids: Sequence[int],
        vectors_by_format: dict[str, np.ndarray],
        map_xy: np.ndarray | None,
        clusters: np.ndarray | None,
        generation: int,
    ) -> None:
        """All rows of one add, in one transaction (all or nothing)."""
        with self.lock, self.db:
            self.db.executemany(
                "INSERT INTO papers (row_id, paper_id, title, abstract, year, venue, publication_date, authors, "
                "fields_of_study, external_ids, url, extra, map_x, map_y, cluster, generation) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        int(row_id),
                        row.paper_id,
                        row.title,
                        row.abstract,
                        row.year,
                        row.venue,
                        row.publication_date,
                        json.dumps(row.authors),
                        json.dumps(row.fields_of_study),
                        json.dumps(row.external_ids),
                        row.url,
                        json.dumps(row.extra),
                        None if map_xy is None else float(map_xy[i, 0]),
                        None if map_xy is None else float(map_xy[i, 1]),
                        None if clusters is None else int(clusters[i]),
                        generation,
                    )
                    for i, (row, row_id) in enumerate(zip(rows, row_ids, strict=True))
                ],
            )
            self.db.executemany(
                "INSERT OR IGNORE INTO external_ids (kind, value, row_id) VALUES (?, ?, ?)",
                [
                    (key, normalise_external_id(key, value), int(row_id))
                    for row, row_id in zip(rows, row_ids, strict=True)
                    for key, value in row.external_ids.items()
                ],
            )
            for format, vectors in vectors_by_format.items():
                data = np.ascontiguousarray(vectors, dtype="<f4")
                self.db.executemany(
                    "INSERT INTO vectors (format, row_id, vector) VALUES (?, ?, ?)",
                    [(format, int(row_id), data[i].tobytes()) for i, row_id in enumerate(row_ids)],
                )

    def checkpoint(self) -> None:
        """Fold the WAL into the database file (a large add otherwise leaves a WAL as big as itself)."""
        with self.lock:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def discard_uncommitted(self, generation: int) -> int:
        """Delete rows that an interrupted add wrote after the last committed generation."""
        with self.lock, self.db:
            stale = "SELECT row_id FROM papers WHERE generation > ?"
            self.db.execute(f"DELETE FROM vectors WHERE row_id IN ({stale})", (generation,))
            self.db.execute(f"DELETE FROM external_ids WHERE row_id IN ({stale})", (generation,))
            return self.db.execute("DELETE FROM papers WHERE generation > ?", (generation,)).rowcount
