"""Put adapters into a Hugging Face encoder's feed-forward blocks without changing its parameters.

The base model keeps its own state dict (so it still saves and loads with ``AutoModel`` alone); each
layer's output block gets a forward that asks an :class:`AdapterRouter` for the active adapter.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .adapters import BottleneckAdapter, LayerAdapters


class AdapterRouter:
    """Which format's adapters are active in the calling thread; shared by the patched layers of one model.

    The active format is thread-local (as AdapterHub's ``AdapterSetup`` context), so requests served
    by several threads with different formats do not see each other's adapters.
    """

    def __init__(self, adapters: nn.ModuleDict):
        self.adapters = adapters
        self._local = threading.local()

    def __deepcopy__(self, memo: dict) -> AdapterRouter:
        """A copy routes the copied adapters; which format is active is per thread, not copied."""
        return AdapterRouter(copy.deepcopy(self.adapters, memo))

    @property
    def active(self) -> str | None:
        return getattr(self._local, "name", None)

    def adapter_for(self, layer: int) -> BottleneckAdapter | None:
        name = self.active
        if name is None:
            return None
        stack: LayerAdapters = self.adapters[name]
        return stack.for_layer(layer)

    @contextmanager
    def activated(self, name: str | None) -> Iterator[None]:
        previous, self._local.name = self.active, name
        try:
            yield
        finally:
            self._local.name = previous


def encoder_layers(base: nn.Module) -> nn.ModuleList:
    """The transformer layers of BERT-, RoBERTa- and MPNet-family encoders."""
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"{type(base).__name__} has no encoder.layer list; adapters support BERT, RoBERTa and MPNet encoders"
        )
    for index, layer in enumerate(layers):
        output = getattr(layer, "output", None)
        if not all(hasattr(output, name) for name in ("dense", "dropout", "LayerNorm")):
            raise ValueError(f"layer {index} of {type(base).__name__} has no BERT-style output block")
    return layers


def output_block(
    output: nn.Module,
    hidden_states: torch.Tensor,
    input_tensor: torch.Tensor,
    adapter: BottleneckAdapter | None,
    dense: Callable[[torch.Tensor], torch.Tensor] | None = None,
    add_norm: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """A BERT-style output block (dense, dropout, residual LayerNorm) with ``adapter`` inside it
    (``dense``: another implementation of the block's dense layer, e.g. its FP8 weights;
    ``add_norm(x, residual, ln, extra=None)``: another implementation of ``ln(x + residual)`` and
    ``ln((x + extra) + residual)``, e.g. one fused kernel)."""
    hidden = output.dropout((dense or output.dense)(hidden_states))
    if adapter is None:
        return add_norm(hidden, input_tensor, output.LayerNorm) if add_norm else output.LayerNorm(hidden + input_tensor)
    return adapter.around_output(hidden, input_tensor, output.LayerNorm, add_norm)


class _OutputForward:
    """The patched forward of one layer's output block.

    An object rather than a closure: ``copy.deepcopy`` of the model then copies it with the module
    and router it refers to (a closure would keep pointing at the original model's modules).
    """

    def __init__(self, output: nn.Module, layer: int, router: AdapterRouter):
        self.output, self.layer, self.router = output, layer, router

    def __call__(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return output_block(self.output, hidden_states, input_tensor, self.router.adapter_for(self.layer))


def install_router(base: nn.Module, router: AdapterRouter) -> None:
    for index, layer in enumerate(encoder_layers(base)):
        layer.output.forward = _OutputForward(layer.output, index, router)
