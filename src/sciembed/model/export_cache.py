"""Automatic exports: ``load(MODEL, backend="openvino")`` on a model folder exports it once, then reuses it.

The export goes next to the model (``MODEL/exports/<fingerprint>/<backend>-<variant>/``) when the
model is a writable local folder, else into ``$SCIEMBED_CACHE/exports/...`` (default
``~/.cache/sciembed/exports/...``). ``<fingerprint>`` is the first 16 hex digits of the model's
fingerprint (all weights and embedding settings), so a retrained model gets a new export. One
process exports at a time (a lock file beside the export); the export is written into a temporary
folder beside its final place and renamed into it when complete, so a killed export leaves nothing
that looks finished, and a second process waiting on the lock finds the first one's export.
A record (``<root>/by-source/<sha256 of the model folder's files>-<export name>``) then names the
export, so a later run on the same files finds it without loading the PyTorch model (which imports
torch and costs seconds of a short CPU job); changed files make a new key and the full check.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..data.atomic import write_atomic
from .bases import cache_root

AUTO_EXPORT_VERSION = "v1"
Exporter = Callable[[Any, Path], Path]  # exporter(model, folder) -> folder


def _export_openvino(model: Any, folder: Path) -> Path:
    from .export_openvino import export_openvino

    return export_openvino(model, folder, int8=True)


def _export_onnx(model: Any, folder: Path) -> Path:
    from .export import export_onnx

    return export_onnx(model, folder, int8=True, optimize=True)


# backend -> (variant name, exporter): the settings of the recommended CPU path.
AUTO_EXPORTS: Mapping[str, tuple[str, Exporter]] = MappingProxyType(
    {
        "openvino": ("int8", _export_openvino),
        "onnx": ("int8-opt", _export_onnx),
    }
)


def _can_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def export_root(model_source: str | Path, can_write: Callable[[Path], bool] = _can_write) -> Path:
    """Where automatic exports of ``model_source`` go: beside a local model that ``can_write`` says
    this process may write into, else the cache."""
    path = Path(model_source).expanduser()
    if path.is_dir() and can_write(path):
        return path / "exports"
    return cache_root() / "exports"


def cached_export(
    model_source: str | Path,
    backend: str,
    notify: Callable[[str], None] | None = None,
    root: Path | None = None,
    exporters: Mapping[str, tuple[str, Exporter]] = AUTO_EXPORTS,
) -> Path:
    """The export folder of ``model_source`` (a model folder or name) for ``backend``: made once, reused.

    ``exporters``: backend -> (variant name, exporter) (default: the recommended CPU settings);
    ``root``: where exports go (default: :func:`export_root`).
    """
    if backend not in exporters:
        raise ValueError(f"no automatic export for backend {backend!r}; known: {', '.join(exporters)}")
    variant, exporter = exporters[backend]
    root = root or export_root(model_source)
    name = f"{backend}-{variant}-{AUTO_EXPORT_VERSION}"
    record = _source_record(model_source, root, name)
    known = _recorded_export(record, root)
    if known is not None:
        return known  # the same files as when it was exported: no model load, no torch import
    from .folder import load_model

    model = load_model(model_source)
    final = root / model.fingerprint[:16] / name
    if final.is_dir():
        _record(record, final, root)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one exporter at a time; a waiting one then finds it done
        if final.is_dir():
            return final
        (notify or _to_stderr)(f"exporting {model_source} for the {backend} backend once, into {final}")
        work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(work, 0o777 & ~umask)  # mkdtemp's 0700 would hide a shared model's export from other users
        try:
            exporter(model, work)
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    _record(record, final, root)
    return final


def source_key(model_source: str | Path) -> str | None:
    """sha256 over a local model folder's files (its ``exports/`` aside) and this code's export
    version; None for a name. Equal keys mean the same model files, so the export made from them can
    be found without loading the model (seconds: the fingerprint needs the weights, and torch). A
    delta model's base is pinned by the ``base_sha256`` in its ``sciembed.json``, which is hashed."""
    from .. import __version__

    folder = Path(model_source).expanduser()
    if not folder.is_dir():
        return None
    digest = hashlib.sha256(f"{__version__}/{AUTO_EXPORT_VERSION}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if relative.parts[0] == "exports":
            continue
        digest.update(f"\0{relative.as_posix()}\0".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _source_record(model_source: str | Path, root: Path, name: str) -> Path | None:
    key = source_key(model_source)
    return root / "by-source" / f"{key[:32]}-{name}" if key else None


def _recorded_export(record: Path | None, root: Path) -> Path | None:
    """The export folder a record names, if the record and the folder are both there."""
    if record is None or not record.is_file():
        return None
    final = root / record.read_text().strip()
    return final if final.is_dir() and final.resolve().is_relative_to(root.resolve()) else None


def _record(record: Path | None, final: Path, root: Path) -> None:
    """Remember which export these model files made (atomically; a failure only costs a later model load)."""
    if record is None:
        return
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        relative = final.relative_to(root).as_posix()
        write_atomic(record, lambda handle: handle.write(relative.encode() + b"\n"))
    except OSError:
        pass


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
