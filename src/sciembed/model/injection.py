"""Put adapters into a Hugging Face encoder's feed-forward blocks without changing its parameters.

The base model keeps its own state dict (so it still saves and loads with ``AutoModel`` alone); each
layer's output block gets a forward that asks an :class:`AdapterRouter` for the active adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .adapters import BottleneckAdapter, LayerAdapters


class AdapterRouter:
    """Which format's adapters are active; shared by the patched layers of one model."""

    def __init__(self, adapters: nn.ModuleDict):
        self.adapters = adapters
        self.active: str | None = None

    def adapter_for(self, layer: int) -> BottleneckAdapter | None:
        if self.active is None:
            return None
        stack: LayerAdapters = self.adapters[self.active]
        return stack.for_layer(layer)

    @contextmanager
    def activated(self, name: str | None) -> Iterator[None]:
        previous, self.active = self.active, name
        try:
            yield
        finally:
            self.active = previous


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


class _OutputForward:
    """The patched forward of one layer's output block.

    An object rather than a closure: ``copy.deepcopy`` of the model then copies it with the module
    and router it refers to (a closure would keep pointing at the original model's modules).
    """

    def __init__(self, output: nn.Module, layer: int, router: AdapterRouter):
        self.output, self.layer, self.router = output, layer, router

    def __call__(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        output = self.output
        hidden = output.dropout(output.dense(hidden_states))
        adapter = self.router.adapter_for(self.layer)
        if adapter is None:
            return output.LayerNorm(hidden + input_tensor)
        return adapter.around_output(hidden, input_tensor, output.LayerNorm)


def install_router(base: nn.Module, router: AdapterRouter) -> None:
    for index, layer in enumerate(encoder_layers(base)):
        layer.output.forward = _OutputForward(layer.output, index, router)
