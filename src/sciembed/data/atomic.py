"""Files that appear complete or not at all: unique temporary name, fsync, rename, fsync the folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temporary_name(path: Path) -> Path:
    """A hidden name next to ``path``, unique per process and call (no two writers share one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` into a temporary file, fsync, rename to ``path``: readers see the old file or
    the new one. The temporary file is removed on any failure (a full disk included)."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))
