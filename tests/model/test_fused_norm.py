"""The fused residual add + LayerNorm: the same function as the modules, used only where it may be."""

import pytest
import torch
from conftest import make_tiny_model
from torch import nn

from sciembed.model.adapters import BottleneckAdapter, BottleneckConfig
from sciembed.model.fused_norm import add_layer_norm, fused_norm_applies
from sciembed.model.injection import output_block


def test_add_layer_norm_is_the_norm_of_the_sum_and_runs_the_modules_off_the_gpu():
    torch.manual_seed(0)
    ln = nn.LayerNorm(24)
    x, residual, extra = torch.randn(5, 24), torch.randn(5, 24), torch.randn(5, 24)
    with torch.no_grad():
        assert torch.equal(add_layer_norm(x, residual, ln), ln(x + residual))
        # three terms in the modules' order: the adapter's add first, then the block's residual
        assert torch.equal(add_layer_norm(x, residual, ln, extra=extra), ln((x + extra) + residual))
        # the kernel is for CUDA half precision only; on the CPU (this machine, CI) the modules run
        assert not fused_norm_applies(x, residual, ln)
        assert not fused_norm_applies(x.half(), residual.half(), ln)
        assert not fused_norm_applies(x.half(), residual.half(), ln, extra=extra[:, :12].half())


def test_the_adapter_skips_a_scaling_of_one_and_keeps_any_other():
    torch.manual_seed(2)
    hidden = torch.randn(3, 16)
    for scaling, factor in ((1.0, 1.0), (0.5, 0.5)):
        adapter = BottleneckAdapter(16, BottleneckConfig(reduction_factor=4, scaling=scaling)).eval()
        nn.init.normal_(adapter.adapter_up.weight, std=0.2)
        with torch.no_grad():
            plain = adapter.adapter_up(adapter.adapter_down(hidden))
            torch.testing.assert_close(adapter.up(hidden), plain * factor, rtol=0, atol=0)


class _Counting:
    """An ``add_norm`` that counts its calls and computes what the modules compute."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, residual, ln, extra=None):
        self.calls += 1
        return ln(x + residual) if extra is None else ln((x + extra) + residual)


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # pfeiffer / seq_bn (SPECTER2's adapters): both norms of sums
        {"original_ln_before": False, "residual_before_ln": True},  # houlsby_output
        {"residual_before_ln": "post_add"},
        {"residual_before_ln": False},
        {"scaling": 0.5},  # a constant scaling: kept where the adapter's add moves into the norm
        {"ln_after": True},  # a norm inside the adapter: its residual add stays in the adapter
    ],
)
def test_output_block_with_an_add_norm_computes_the_same(overrides):
    torch.manual_seed(1)
    model = make_tiny_model()
    output = model.base.encoder.layer[0].output.eval()
    adapter = BottleneckAdapter(output.dense.out_features, BottleneckConfig(reduction_factor=4, **overrides)).eval()
    nn.init.normal_(adapter.adapter_up.weight, std=0.2)  # an adapter that changes its input
    hidden_states = torch.randn(7, output.dense.in_features)
    input_tensor = torch.randn(7, output.dense.out_features)
    counting = _Counting()
    with torch.no_grad():
        for block_adapter in (None, adapter):
            expected = output_block(output, hidden_states, input_tensor, block_adapter)
            got = output_block(output, hidden_states, input_tensor, block_adapter, add_norm=counting)
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
    config = adapter.config
    fused = (
        1 + int(config.original_ln_before and config.residual_before_ln != "post_add") + int(config.original_ln_after)
    )
    assert counting.calls == fused  # every norm of a sum went through add_norm
