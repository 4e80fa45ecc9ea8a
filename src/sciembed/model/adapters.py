"""Bottleneck adapters (Pfeiffer / Houlsby-style ``seq_bn``), written without the ``adapters`` library.

The computation follows AdapterHub's ``BottleneckLayer`` exactly for sequential bottlenecks after
the feed-forward block (checked against the library on real checkpoints, see
``tests/model/test_adapterhub_parity.py``). With the Pfeiffer config the original LayerNorm runs
twice: once before the adapter (on FFN output + attention residual) and once after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "tanh": nn.Tanh,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "leakyrelu": nn.LeakyReLU,
}

# AdapterHub's named configs that this module implements.
_NAMED_CONFIGS = {
    "pfeiffer": {},
    "seq_bn": {},
    "houlsby_output": {"original_ln_before": False, "residual_before_ln": True},
}


@dataclass
class BottleneckConfig:
    """A sequential bottleneck adapter after each layer's feed-forward block.

    Field names and meanings are AdapterHub's ``BnConfig``; defaults are ``SeqBnConfig`` (Pfeiffer).
    """

    reduction_factor: float | dict[str, float] = 16
    non_linearity: str = "relu"
    original_ln_before: bool = True
    original_ln_after: bool = True
    residual_before_ln: bool | str = True
    adapter_residual_before_ln: bool = False
    ln_before: bool = False
    ln_after: bool = False
    scaling: float = 1.0
    leave_out: list[int] = field(default_factory=list)
    mh_adapter: bool = False
    output_adapter: bool = True

    def __post_init__(self) -> None:
        if self.mh_adapter:
            raise ValueError("adapters after the attention block (mh_adapter=true) are not supported")
        if not self.output_adapter:
            raise ValueError("only adapters after the feed-forward block (output_adapter=true) are supported")
        if self.non_linearity.lower() not in ACTIVATIONS:
            raise ValueError(f"unknown adapter non_linearity {self.non_linearity!r}; known: {sorted(ACTIVATIONS)}")
        if not isinstance(self.scaling, int | float):
            raise ValueError(f"only a constant adapter scaling is supported, got {self.scaling!r}")

    def reduction_for_layer(self, layer: int) -> float:
        if isinstance(self.reduction_factor, Mapping):
            table = self.reduction_factor
            return float(table.get(str(layer), table.get("default", 16)))
        return float(self.reduction_factor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | str) -> BottleneckConfig:
        """Read our own or an AdapterHub config (a dict, or a name such as ``pfeiffer``)."""
        if isinstance(config, str):
            if config not in _NAMED_CONFIGS:
                raise ValueError(f"unknown adapter config name {config!r}; known: {sorted(_NAMED_CONFIGS)}")
            return cls(**_NAMED_CONFIGS[config])
        config = dict(config)
        architecture = config.pop("architecture", "bottleneck")
        if architecture not in (None, "bottleneck"):
            raise ValueError(f"adapter architecture {architecture!r} is not a bottleneck adapter")
        for flag in ("is_parallel", "phm_layer", "use_gating", "inv_adapter", "cross_adapter"):
            if config.get(flag):
                raise ValueError(f"adapter option {flag}={config[flag]!r} is not supported")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})


class BottleneckAdapter(nn.Module):
    """down-projection, activation, up-projection; parameter names match AdapterHub's."""

    def __init__(self, hidden_size: int, config: BottleneckConfig, layer: int = 0):
        super().__init__()
        self.config = config
        bottleneck = max(1, int(hidden_size // config.reduction_for_layer(layer)))
        down: list[nn.Module] = []
        if config.ln_before:
            down.append(nn.LayerNorm(hidden_size))
        down += [nn.Linear(hidden_size, bottleneck), ACTIVATIONS[config.non_linearity.lower()]()]
        self.adapter_down = nn.Sequential(*down)
        self.adapter_up = nn.Linear(bottleneck, hidden_size)
        if config.ln_after:
            self.adapter_norm_after = nn.LayerNorm(hidden_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # AdapterHub's "bert" init: N(0, 0.02) weights, zero biases.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def up(self, hidden: torch.Tensor) -> torch.Tensor:
        """The bottleneck's output before any residual: up(down(hidden)) x scaling."""
        output = self.adapter_up(self.adapter_down(hidden))
        # x 1.0 is exact: skipping it saves a pass over the activations (scaled adapters keep
        # scaling 1.0 and carry the scale in their weights: sciembed train interpolate)
        return output if self.config.scaling == 1 else output * self.config.scaling

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        output = self.up(hidden)
        if self.config.adapter_residual_before_ln:
            output = output + residual
        if self.config.ln_after:
            output = self.adapter_norm_after(output)
        if not self.config.adapter_residual_before_ln:
            output = output + residual
        return output

    def around_output(
        self,
        hidden: torch.Tensor,
        input_tensor: torch.Tensor,
        layer_norm: nn.Module,
        add_norm: Callable[..., torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The feed-forward block's residual + LayerNorm with this adapter in it.

        ``hidden`` is the FFN output after dropout; ``input_tensor`` the attention block's output.
        ``add_norm(x, residual, ln, extra=None)``: another implementation of ``ln(x + residual)``,
        and of ``ln((x + extra) + residual)`` (a fused kernel; :func:`sciembed.model.fused_norm.add_layer_norm`).
        Mirrors AdapterHub's pre_forward / forward / post_forward.
        """
        config = self.config

        def norm_of_sum(x: torch.Tensor) -> torch.Tensor:
            return add_norm(x, input_tensor, layer_norm) if add_norm else layer_norm(x + input_tensor)

        residual = hidden if config.residual_before_ln is True else None
        if config.original_ln_before:
            if config.residual_before_ln == "post_add":
                hidden = residual = hidden + input_tensor
                hidden = layer_norm(hidden)
            else:
                hidden = norm_of_sum(hidden)
        if not config.residual_before_ln:
            residual = hidden
        if add_norm is not None and config.original_ln_after and not config.ln_after:
            # the adapter's residual add inside the final norm of the sum: ln((up + residual) + input)
            return add_norm(self.up(hidden), input_tensor, layer_norm, extra=residual)
        hidden = self(hidden, residual)
        if config.original_ln_after:
            hidden = norm_of_sum(hidden)
        return hidden


class LayerAdapters(nn.Module):
    """One encoder's adapters for one format: a bottleneck per transformer layer (None where left out)."""

    def __init__(self, hidden_size: int, num_layers: int, config: BottleneckConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleDict(
            {str(i): BottleneckAdapter(hidden_size, config, i) for i in range(num_layers) if i not in config.leave_out}
        )

    def for_layer(self, index: int) -> BottleneckAdapter | None:
        return self.layers[str(index)] if str(index) in self.layers else None
