"""AdamW parameter groups (no decay on biases and normalisation weights) and the warm-up schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .config import OptimConfig

_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.RMSNorm)


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters that get no weight decay: biases, and every weight of a norm layer
    (found by module type, and by name for norms that are not ``nn`` modules, e.g. ``LayerNorm``/``norm``)."""
    names = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name == "bias" or param_name.endswith("_bias") or is_norm:
                names.add(full)
            elif "layernorm" in full.lower() or "layer_norm" in full.lower():
                names.add(full)
    return names


def param_groups(model: nn.Module, weight_decay: float, lr_by_prefix: dict[str, float] | None = None) -> list[dict]:
    """AdamW groups over the trainable parameters: with ``weight_decay`` and without it, and apart per
    learning rate of ``lr_by_prefix`` (groups of the default rate first; those carry no ``lr`` key)."""
    skip = no_decay_names(model)
    prefixes = sorted(lr_by_prefix or {}, key=len, reverse=True)
    buckets: dict[tuple[str | None, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        key = (prefix, name in skip)
        if key not in buckets:
            buckets[key] = {"params": [], "weight_decay": 0.0 if name in skip else weight_decay, "names": []}
            if prefix is not None:
                buckets[key]["lr"] = float(lr_by_prefix[prefix])
        buckets[key]["params"].append(param)
        buckets[key]["names"].append(name)
    if not buckets:
        raise ValueError("the model has no trainable parameters")
    unused = sorted(set(prefixes) - {k[0] for k in buckets})
    if unused:  # a typo would silently train those parameters at the default rate
        raise ValueError(f"optim.lr_by_prefix: {unused} match no trainable parameter name")
    return [buckets[k] for k in sorted(buckets, key=lambda k: (k[0] is not None, k[0] or "", k[1]))]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (fused kernels when the parameters are on CUDA)."""
    groups = [
        {k: v for k, v in g.items() if k != "names"}
        for g in param_groups(model, config.weight_decay, config.lr_by_prefix)
    ]
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    extra = {"fused": True} if on_cuda else {}
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps, **extra)


def warmup_steps_for(config: OptimConfig, total_steps: int) -> int:
    if config.warmup_steps is not None:
        return min(config.warmup_steps, total_steps)
    return int(math.ceil(config.warmup_ratio * total_steps))


def lr_factor(step: int, warmup: int, total: int, schedule: str = "linear") -> float:
    """Learning-rate multiplier of optimizer step ``step`` (0-based): ``(step + 1) / warmup`` during the
    ``warmup`` steps, then 1 at step ``warmup`` falling linearly towards 0 at ``total`` (``linear``),
    or 1 (``constant``)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int):
    """``LambdaLR`` with :func:`lr_factor` (the first step trains at ``lr / warmup``, none at lr 0)."""
    warmup = warmup_steps_for(config, total_steps)
    schedule = config.schedule

    def factor(step: int) -> float:
        return lr_factor(step, warmup, total_steps, schedule)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trainable_parameters(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]
