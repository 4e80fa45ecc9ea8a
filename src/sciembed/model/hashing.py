"""File digests used to pin model weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weight_file(folder: str | Path) -> Path | None:
    for name in WEIGHT_FILES:
        path = Path(folder) / name
        if path.is_file():
            return path
    return None
