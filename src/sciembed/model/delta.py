"""A low-rank (LoRA-style) delta of a base encoder's linear layers, stored compactly beside the base.

Each target linear's weight becomes ``W + scale * (alpha / rank) * B @ A`` (``A``: rank x in,
``B``: out x rank). A model folder stores it as ``delta/delta.safetensors`` (the factors, fp16 by
default) and ``delta/delta_config.json``, and names it in ``sciembed.json`` (``"delta": "delta"``):

* a folder that builds on a registry base (``base_model``, no weights of its own) merges the delta
  into the verified registry weights once at load, so inference runs the plain base at its speed;
* a folder that holds its own base weights holds them with the delta already merged; the delta is
  kept beside them so that the model can ship as "registry base + delta + adapters" and be rescaled.

``scale`` is the WiSE-style mixing weight of the delta (0: the base, 1: the trained delta).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .injection import encoder_layers

DELTA_DIR = "delta"
DELTA_WEIGHTS = "delta.safetensors"
DELTA_CONFIG = "delta_config.json"
#: Every linear of each encoder layer: attention query/key/value/output and the two feed-forward ones.
DEFAULT_TARGETS = ("*",)
_A, _B = "lora_A", "lora_B"


@dataclass(frozen=True)
class DeltaConfig:
    """rank and alpha: LoRA's (the update is scaled by ``alpha / rank``); targets: fnmatch patterns of a
    linear's path inside an encoder layer (``attention.self.query``, ``intermediate.dense``, ``*``);
    scale: mixing weight of the whole delta; base_sha256: weights of the base it was trained on."""

    rank: int
    alpha: float
    targets: tuple[str, ...] = DEFAULT_TARGETS
    scale: float = 1.0
    base_sha256: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank must be a positive integer, got {self.rank!r}")
        if not isinstance(self.alpha, int | float) or self.alpha <= 0:
            raise ValueError(f"alpha must be a positive number, got {self.alpha!r}")
        if not isinstance(self.scale, int | float) or self.scale < 0:
            raise ValueError(f"scale must be a non-negative number, got {self.scale!r}")
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise ValueError(f"targets must be a non-empty list of module-path patterns, got {self.targets!r}")
        object.__setattr__(self, "targets", tuple(self.targets))

    @property
    def factor(self) -> float:
        """What multiplies ``B @ A`` in the merged weight."""
        return float(self.scale) * float(self.alpha) / self.rank

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = list(self.targets)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeltaConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown keys {unknown}; known: {sorted(known)}")
        return cls(**{**data, "targets": tuple(data.get("targets", DEFAULT_TARGETS))})


def target_linears(base: nn.Module, patterns: tuple[str, ...] | list[str]) -> dict[str, nn.Linear]:
    """``{module name in base: linear}`` of the encoder layers' linears whose path inside their layer
    matches one of ``patterns`` (``fnmatch``, e.g. ``attention.*``); an error when none does."""
    layers = encoder_layers(base)
    prefix = next(name for name, module in base.named_modules() if module is layers)
    found: dict[str, nn.Linear] = {}
    for index, layer in enumerate(layers):
        for path, module in layer.named_modules():
            if isinstance(module, nn.Linear) and any(fnmatchcase(path, p) for p in patterns):
                found[f"{prefix}.{index}.{path}"] = module
    if not found:
        paths = sorted(p for p, m in layers[0].named_modules() if isinstance(m, nn.Linear))
        raise ValueError(f"no linear of the encoder layers matches {list(patterns)}; they are: {paths}")
    return found


@dataclass(frozen=True)
class LowRankDelta:
    """A :class:`DeltaConfig` and the factors ``(A, B)`` of each target linear (CPU tensors)."""

    config: DeltaConfig
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def num_parameters(self) -> int:
        return sum(a.numel() + b.numel() for a, b in self.factors.values())

    def update(self, name: str) -> torch.Tensor:
        """The fp32 weight update of linear ``name``: ``factor * B @ A``."""
        a, b = self.factors[name]
        return self.config.factor * (b.float() @ a.float())

    def merged_weight(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """``weight`` plus the update, computed in fp32 and returned in ``weight``'s dtype (the one merge rule)."""
        return (weight.detach().float() + self.update(name).to(weight.device)).to(weight.dtype)

    def linears(self, base: nn.Module, source: str = "the delta") -> dict[str, nn.Linear]:
        """The linears of ``base`` that the factors belong to; an error when one is missing or of another shape."""
        modules = dict(base.named_modules())
        found = {}
        for name, (a, b) in self.factors.items():
            linear = modules.get(name)
            if not isinstance(linear, nn.Linear):
                raise ValueError(f"{source}: the base has no linear {name!r}; the delta is for another model")
            if tuple(linear.weight.shape) != (b.shape[0], a.shape[1]) or a.shape[0] != b.shape[1]:
                raise ValueError(
                    f"{source}: {name} has weight {tuple(linear.weight.shape)} but factors "
                    f"A {tuple(a.shape)}, B {tuple(b.shape)}; the delta is for another model"
                )
            found[name] = linear
        return found

    def merge_into(self, base: nn.Module, source: str = "the delta", times: float = 1.0) -> None:
        """Add ``times`` x the update to each target linear of ``base`` in place (merged once, the
        weights then include it; ``times=-1`` takes it out again up to rounding)."""
        with torch.no_grad():
            for name, linear in self.linears(base, source).items():
                if times == 1.0:
                    linear.weight.copy_(self.merged_weight(name, linear.weight))
                else:
                    update = times * self.update(name).to(linear.weight.device)
                    linear.weight.copy_((linear.weight.float() + update).to(linear.weight.dtype))

    def scaled(self, by: float) -> LowRankDelta:
        """The same factors with the whole delta scaled by ``by`` (WiSE-style mixing with the base)."""
        return replace(self, config=replace(self.config, scale=self.config.scale * by))

    def rounded(self, dtype: torch.dtype) -> LowRankDelta:
        """The factors as ``dtype`` holds them (so that what is merged equals what a file stores)."""
        factors = {n: (a.to(dtype).cpu(), b.to(dtype).cpu()) for n, (a, b) in self.factors.items()}
        return replace(self, factors=factors)

    # ---- files ------------------------------------------------------------------------------------
    def save(self, folder: str | Path, dtype: torch.dtype | None = torch.float16) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stored = self.rounded(dtype) if dtype is not None else self
        tensors = {}
        for name, (a, b) in stored.factors.items():
            tensors[f"{name}.{_A}"] = a.contiguous()
            tensors[f"{name}.{_B}"] = b.contiguous()
        save_file(tensors, str(folder / DELTA_WEIGHTS), metadata={"format": "pt"})
        (folder / DELTA_CONFIG).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> LowRankDelta:
        """Read a delta folder; every problem is an error naming the file."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config_path, weights_path = folder / DELTA_CONFIG, folder / DELTA_WEIGHTS
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: missing (a low-rank delta folder holds {DELTA_CONFIG} and {DELTA_WEIGHTS})"
                )
        try:
            config = DeltaConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{config_path}: {exc}") from None
        try:
            tensors = load_file(str(weights_path))
        except Exception as exc:  # noqa: BLE001  safetensors raises its own error type for a damaged file
            raise ValueError(f"{weights_path}: not a readable safetensors file ({exc})") from None
        names = sorted({key.rsplit(".", 1)[0] for key in tensors})
        factors = {}
        for name in names:
            a, b = tensors.get(f"{name}.{_A}"), tensors.get(f"{name}.{_B}")
            if a is None or b is None or a.dim() != 2 or b.dim() != 2 or a.shape[0] != config.rank:
                raise ValueError(f"{weights_path}: {name} needs {_A} (rank {config.rank} x in) and {_B} (out x rank)")
            factors[name] = (a, b)
        if not factors:
            raise ValueError(f"{weights_path}: no factors")
        return cls(config, factors)
