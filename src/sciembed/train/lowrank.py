"""Training a low-rank delta over a frozen base (LoRA, Hu et al. 2021) for stage 1.

Each target linear's weight is reparametrised as ``W + (alpha / rank) * B @ A`` with ``W`` frozen,
``A`` (rank x in) Kaiming-uniform and ``B`` (out x rank) zero, so training starts exactly at the base.
The parametrisation (``torch.nn.utils.parametrize``) makes every reader of ``linear.weight`` (the
padded Hugging Face forward and sciembed's packed forward alike) see the merged weight, so no
forward code changes. After training the factors are rounded to their storage dtype, the
parametrisation is removed and the delta merged once (:class:`~sciembed.model.delta.LowRankDelta`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..model import SciEmbedModel, parse_dtype
from ..model.delta import DELTA_DIR, DeltaConfig, LowRankDelta, target_linears


class LowRankUpdate(nn.Module):
    """The parametrisation ``W -> W + factor * B @ A`` of one linear's weight."""

    def __init__(self, out_features: int, in_features: int, rank: int, factor: float, generator: torch.Generator):
        super().__init__()
        a = torch.empty(rank, in_features)
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's (and PEFT's) kaiming_uniform(a=sqrt(5)) bound
        a.uniform_(-bound, bound, generator=generator)
        self.lora_A = nn.Parameter(a)
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        self.factor = factor

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.factor * (self.lora_B @ self.lora_A)).to(weight.dtype)


def attach_lowrank(model: SciEmbedModel, config: DeltaConfig, seed: int = 0) -> dict[str, LowRankUpdate]:
    """Freeze ``model`` and make a trainable low-rank update of each target linear (see the module doc)."""
    if model.delta is not None:
        raise ValueError("the model has a low-rank delta merged already; train the next one from a plain base")
    model.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    updates: dict[str, LowRankUpdate] = {}
    for name, linear in target_linears(model.base, config.targets).items():
        weight = linear.weight
        update = LowRankUpdate(weight.shape[0], weight.shape[1], config.rank, config.factor, generator)
        update.to(device=weight.device, dtype=weight.dtype)
        parametrize.register_parametrization(linear, "weight", update)
        updates[name] = update
    return updates


def detach_lowrank(
    model: SciEmbedModel, updates: dict[str, LowRankUpdate], config: DeltaConfig, dtype: str | torch.dtype = "fp16"
) -> LowRankDelta:
    """End the parametrisation: the factors rounded to ``dtype`` become ``model.delta`` and are merged
    into the frozen weights (so the merged model is exactly what the saved delta gives)."""
    factors = {name: (u.lora_A.detach().clone(), u.lora_B.detach().clone()) for name, u in updates.items()}
    modules = dict(model.base.named_modules())
    for name in updates:
        parametrize.remove_parametrizations(modules[name], "weight", leave_parametrized=False)
    delta = LowRankDelta(config, factors).rounded(parse_dtype(dtype))
    delta.merge_into(model.base)
    model.delta = delta
    model.config.delta = DELTA_DIR
    return delta


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
