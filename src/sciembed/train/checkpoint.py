"""Resumable checkpoints: weights (safetensors), optimizer, scheduler, RNG states, data position.

A checkpoint is a folder ``checkpoints/step-00001234/`` holding ``model.safetensors`` (the trainable
module's full state dict) and ``state.pt`` (everything else, plain tensors and Python values, read
back with ``torch.load(weights_only=True)``). It is written to a temporary folder and renamed, and
``checkpoints/latest`` (a text file naming the folder) is replaced atomically afterwards, so a run
killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest"
WEIGHTS = "model.safetensors"
STATE = "state.pt"


# ---- RNG states ------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and Python ``random`` states, as weights_only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [int(version), torch.tensor(internal, dtype=torch.int64), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in internal.tolist()), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:  # a different machine layout: restore what fits
            for index, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state, index)


# ---- save / load -----------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """Where training stands: optimizer steps done, data position and loop bookkeeping."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already consumed
    examples_seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "examples_seen": self.examples_seen,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(**data)


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def _module_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors sharing storage (tied weights)
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(
    output_dir: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: TrainState,
    keep: int = 2,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write ``checkpoints/step-N`` atomically, point ``latest`` at it, drop all but the ``keep`` newest."""
    from safetensors.torch import save_file

    root = checkpoint_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state.step:08d}"
    final = root / name
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_module_state(model), str(tmp / WEIGHTS))
    payload = {
        "train_state": state.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "config": config,
    }
    torch.save(payload, tmp / STATE)
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(name + "\n")
    os.replace(pointer, root / LATEST)
    _fsync_dir(root)
    old = sorted(p for p in root.glob("step-*") if p.is_dir() and p.name != name)
    for stale in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The folder ``checkpoints/latest`` names, else the newest complete ``step-*`` folder, else None."""
    root = checkpoint_root(output_dir)
    pointer = root / LATEST
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if (folder / STATE).is_file() and (folder / WEIGHTS).is_file():
            return folder
    done = sorted(p for p in root.glob("step-*") if (p / STATE).is_file() and (p / WEIGHTS).is_file())
    return done[-1] if done else None


def load_checkpoint(
    folder: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> TrainState:
    """Load weights (and optimizer, scheduler, RNG states) from ``folder``; returns the train state."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / STATE).is_file():
        raise FileNotFoundError(f"{folder}: not a checkpoint (needs {WEIGHTS} and {STATE})")
    weights = load_file(str(folder / WEIGHTS))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{folder}: checkpoint does not fit the model (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    payload = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload.get("scheduler") is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        set_rng_state(payload["rng"])
    return TrainState.from_dict(payload["train_state"])
