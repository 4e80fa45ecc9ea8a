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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bases import cache_root

# backend -> (variant name, exporter(model, folder)): the settings of the recommended CPU path.
AUTO_EXPORT_VERSION = "v1"


def _export_openvino(model: Any, folder: Path) -> Path:
    from .export_openvino import export_openvino

    return export_openvino(model, folder, int8=True)


def _export_onnx(model: Any, folder: Path) -> Path:
    from .export import export_onnx

    return export_onnx(model, folder, int8=True, optimize=True)


AUTO_EXPORTS: dict[str, tuple[str, Callable[[Any, Path], Path]]] = {
    "openvino": ("int8", _export_openvino),
    "onnx": ("int8-opt", _export_onnx),
}


def export_root(model_source: str | Path) -> Path:
    """Where automatic exports of ``model_source`` go: beside a writable local model, else the cache."""
    path = Path(model_source).expanduser()
    if path.is_dir() and os.access(path, os.W_OK | os.X_OK):
        return path / "exports"
    return cache_root() / "exports"


def cached_export(
    model_source: str | Path, backend: str, notify: Callable[[str], None] | None = None, root: Path | None = None
) -> Path:
    """The export folder of ``model_source`` (a model folder or name) for ``backend``: made once, reused."""
    from .folder import load_model

    if backend not in AUTO_EXPORTS:
        raise ValueError(f"no automatic export for backend {backend!r}; known: {', '.join(AUTO_EXPORTS)}")
    variant, exporter = AUTO_EXPORTS[backend]
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
