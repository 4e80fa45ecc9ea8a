"""Automatic exports: ``load(MODEL, backend="openvino")`` on a model folder exports it once, then reuses it.

The export goes next to the model (``MODEL/exports/<fingerprint>/<backend>-<variant>/``) when the
model is a writable local folder, else into ``$SCIEMBED_CACHE/exports/...`` (default
``~/.cache/sciembed/exports/...``). ``<fingerprint>`` is the first 16 hex digits of the model's
fingerprint (all weights and embedding settings), so a retrained model gets a new export. One
process exports at a time (a lock file beside the export); the export is written into a temporary
folder beside its final place and renamed into it when complete, so a killed export leaves nothing
that looks finished, and a second process waiting on the lock finds the first one's export.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

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
    from .folder import load_model

    if backend not in exporters:
        raise ValueError(f"no automatic export for backend {backend!r}; known: {', '.join(exporters)}")
    variant, exporter = exporters[backend]
    model = load_model(model_source)
    final = (root or export_root(model_source)) / model.fingerprint[:16] / f"{backend}-{variant}-{AUTO_EXPORT_VERSION}"
    if final.is_dir():
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
    return final


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
