"""Weight-space interpolation towards the starting model (WiSE-FT), for bases and adapters.

Fine-tuning on narrow data moves a model away from what its start knew; mixing the tuned weights
with the initial ones, ``(1 - alpha) * start + alpha * tuned``, keeps much of the gain and much of
the old knowledge (Wortsman et al., 2022). For a bottleneck adapter the "initial" function is no
adapter at all, so interpolating its up-projection towards zero scales its residual contribution:
``h + alpha * up(f(down(h)))``. For a low-rank stage-1 delta (:mod:`sciembed.model.delta`) the
initial function is the frozen base, so scaling the delta is exactly the interpolation of the tuned
and the initial base: ``W + alpha * B @ A``. ``alpha`` is chosen on validation data, never on a test set.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch

from ..model import SciEmbedModel


def interpolate_base(start: SciEmbedModel, tuned: SciEmbedModel, alpha: float) -> SciEmbedModel:
    """A copy of ``tuned`` whose base weights are ``(1 - alpha) * start + alpha * tuned`` (adapters kept)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    ours, theirs = tuned.base.state_dict(), start.base.state_dict()
    missing = sorted(set(ours) ^ set(theirs))
    if missing:
        raise ValueError(f"the two bases differ in their weights ({missing[:3]} ...): not the same architecture")
    mixed = copy.deepcopy(tuned)
    state = {
        name: torch.lerp(theirs[name].to(value), value, alpha) if value.is_floating_point() else value
        for name, value in ours.items()
    }
    mixed.base.load_state_dict(state)
    mixed.delta = None  # the mixed base is no longer "some base + that delta"
    return mixed


def scale_delta(model: SciEmbedModel, alpha: float) -> SciEmbedModel:
    """A copy of ``model`` whose merged low-rank delta is scaled by ``alpha`` (0: the base it was trained
    on, 1: unchanged); the adapters are kept as they are."""
    if alpha < 0.0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    if model.delta is None:
        raise ValueError("the model has no low-rank delta to scale (it was not trained with stage-1 `lora`)")
    scaled = copy.deepcopy(model)
    scaled.delta.merge_into(scaled.base, times=alpha - 1.0)
    scaled.delta = scaled.delta.scaled(alpha)
    return scaled


def scale_adapters(model: SciEmbedModel, alpha: float, formats: Iterable[str] | None = None) -> SciEmbedModel:
    """A copy of ``model`` with each chosen adapter's residual contribution scaled by ``alpha``."""
    if alpha < 0.0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    scaled = copy.deepcopy(model)
    chosen = list(formats) if formats is not None else list(scaled.formats)
    unknown = sorted(set(chosen) - set(scaled.formats))
    if unknown:
        raise ValueError(f"no adapter for {unknown}; the model has {list(scaled.formats)}")
    with torch.no_grad():
        for fmt in chosen:
            for adapter in scaled.adapters[fmt].layers.values():
                adapter.adapter_up.weight.mul_(alpha)
                adapter.adapter_up.bias.mul_(alpha)
    return scaled
