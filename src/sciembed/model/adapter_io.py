"""Reading AdapterHub adapter checkpoints and writing our own (safetensors + JSON)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from .adapters import BottleneckConfig, LayerAdapters

ADAPTER_CONFIG = "adapter_config.json"
# What AdapterHub's `adapters` (1.x) reads and writes: `load_adapter(folder)` reads the .bin,
# `load_adapter(folder, use_safetensors=True)` the .safetensors. We write both (a few hundred kB).
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_WEIGHTS_BIN = "pytorch_adapter.bin"
# Read in this order: AdapterHub's two names, then our older folders' PEFT-style name.
ADAPTERHUB_WEIGHTS = (
    ADAPTER_WEIGHTS,
    ADAPTER_WEIGHTS_BIN,
    "adapter_model.safetensors",
    "pytorch_adapter.safetensors",
)
_KEY = re.compile(r"(?:^|\.)layer\.(\d+)\.output\.adapters\.([^.]+)\.(.+)$")


def read_adapter_folder(folder: str | Path) -> tuple[BottleneckConfig, dict[str, Any], dict[str, torch.Tensor]]:
    """Config, raw config JSON and weights (keys ``layers.{i}.{param}``) of an adapter folder."""
    folder = Path(folder)
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: not an adapter folder (no {ADAPTER_CONFIG})")
    try:
        raw = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        config = BottleneckConfig.from_dict(raw.get("config", raw))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{config_path}: {exc}") from None
    state = _read_weights(folder)
    weights: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        match = _KEY.search(key)
        if match is None:
            if "heads." in key or key.startswith("head"):
                continue  # prediction heads are not needed to embed
            raise ValueError(
                f"{folder}: unexpected adapter weight {key!r} (only feed-forward bottlenecks are supported)"
            )
        layer, _, param = match.groups()
        weights[f"layers.{layer}.{param}"] = tensor
    if not weights:
        raise ValueError(f"{folder}: no adapter weights found")
    return config, raw, weights


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    for name in ADAPTERHUB_WEIGHTS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - damaged files raise many types; name the file
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{path}: cannot load the adapter weights ({reason})") from None
    raise FileNotFoundError(f"{folder}: no adapter weights ({' / '.join(ADAPTERHUB_WEIGHTS)})")


def load_adapter_weights(stack: LayerAdapters, weights: dict[str, torch.Tensor], source: str) -> None:
    own = stack.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{source}: adapter does not fit the model (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    for key, tensor in weights.items():
        if tensor.shape != own[key].shape:
            raise ValueError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, the model needs {tuple(own[key].shape)}"
            )
    stack.load_state_dict({k: v.to(own[k].dtype) for k, v in weights.items()})


def write_adapter_folder(
    stack: LayerAdapters, folder: Path, name: str, model_type: str, hidden_size: int, dtype: torch.dtype | None = None
) -> None:
    """A folder AdapterHub's ``adapters`` library loads unchanged: its config (``architecture: null``
    marks a bottleneck adapter there), key names and safetensors file name."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "config": {"architecture": None, **stack.config.to_dict()},
        "hidden_size": hidden_size,
        "model_type": model_type,
        "name": name,
        "version": "sciembed",
    }
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    tensors = {}
    for key, tensor in stack.state_dict().items():
        _, layer, param = key.split(".", 2)
        out = tensor.detach().to("cpu")
        tensors[f"{model_type}.encoder.layer.{layer}.output.adapters.{name}.{param}"] = (
            out.to(dtype) if dtype is not None else out
        ).contiguous()
    save_file(tensors, str(folder / ADAPTER_WEIGHTS))
    torch.save(tensors, folder / ADAPTER_WEIGHTS_BIN)  # plain tensors: loadable with weights_only=True
