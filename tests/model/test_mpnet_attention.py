"""MPNet self-attention through SDPA (relative position bias + padding mask as one float mask) computes
what transformers' eager attention computes: outputs and every gradient, on padded batches."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_base
from torch.overrides import TorchFunctionMode

from sciembed.model.mpnet_attention import PATCHED, attention_bias, use_eager_attention, use_sdpa_attention


def _padded_batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 30000, (4, 19), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate((19, 12, 5, 2)):
        mask[row, length:] = 0
    ids[mask == 0] = 1  # MPNet's pad id
    return ids, mask


def _pair(layers: int = 3, dropout: float | None = 0.0):
    eager = tiny_base("mpnet", seed=3, hidden=64, layers=layers)
    if dropout is not None:
        for module in eager.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = dropout
    ours = copy.deepcopy(eager)
    assert use_sdpa_attention(ours) == layers
    assert use_sdpa_attention(ours) == 0  # idempotent
    return eager, ours


class SdpaCalls(TorchFunctionMode):
    """Records the ``attn_mask`` shape of every SDPA call made while it is active (torch's own hook)."""

    def __init__(self):
        super().__init__()
        self.masks: list[torch.Size] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.scaled_dot_product_attention:
            self.masks.append(kwargs["attn_mask"].shape)
        return func(*args, **kwargs)


def test_forward_equals_eager_on_a_padded_batch():
    eager, ours = _pair()
    ids, mask = _padded_batch()
    with torch.no_grad():
        with SdpaCalls() as eager_calls:
            expected = eager(input_ids=ids, attention_mask=mask).last_hidden_state
        with SdpaCalls() as calls:
            got = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert eager_calls.masks == []  # transformers' eager MPNet attention
    assert calls.masks == [torch.Size([4, 2, 19, 19])] * 3  # every layer, bias per head and item
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_gradients_equal_eager_in_training_mode():
    eager, ours = _pair()
    eager.train(), ours.train()
    ids, mask = _padded_batch(1)
    weights = torch.randn(4, 19, 64, generator=torch.Generator().manual_seed(2)) * mask[..., None]
    for model in (eager, ours):
        (model(input_ids=ids, attention_mask=mask).last_hidden_state * weights).sum().backward()
    named = dict(ours.named_parameters())
    checked = 0
    for name, param in eager.named_parameters():
        if param.grad is None:
            assert named[name].grad is None, name
            continue
        torch.testing.assert_close(named[name].grad, param.grad, atol=1e-5, rtol=1e-4, msg=name)
        checked += 1
    assert checked > 30 and named["encoder.relative_attention_bias.weight"].grad.abs().sum() > 0


def test_attention_dropout_is_applied_in_training_only():
    _, ours = _pair(dropout=0.0)
    for module in ours.modules():
        if type(module).__name__ == "MPNetSelfAttention":
            module.dropout.p = 0.5  # the attention probabilities' dropout only
    ids, mask = _padded_batch()
    with torch.no_grad():
        ours.train()
        first, second = (ours(input_ids=ids, attention_mask=mask).last_hidden_state for _ in range(2))
        ours.eval()
        third, fourth = (ours(input_ids=ids, attention_mask=mask).last_hidden_state for _ in range(2))
    assert not torch.allclose(first, second)
    torch.testing.assert_close(third, fourth)


def test_attention_weights_requested_take_the_eager_forward_and_undo_restores_it():
    eager, ours = _pair()
    ids, mask = _padded_batch()
    with torch.no_grad():
        out = ours(input_ids=ids, attention_mask=mask, output_attentions=True)
        reference = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert len(out.attentions) == 3
    torch.testing.assert_close(out.attentions[0], reference.attentions[0])
    assert use_eager_attention(ours) == 3
    assert not any(hasattr(m, PATCHED) for m in ours.modules())


def test_boolean_and_additive_masks_give_the_same_bias():
    keep = torch.tensor([[True, True, False]]).view(1, 1, 1, 3)
    additive = (1.0 - keep.float()) * torch.finfo(torch.float32).min
    bias = torch.randn(1, 2, 3, 3)
    torch.testing.assert_close(attention_bias(keep, bias, torch.float32), attention_bias(additive, bias, torch.float32))
    assert attention_bias(None, None, torch.float32) is None
    assert attention_bias(None, bias, torch.bfloat16).dtype == torch.bfloat16


def test_other_architectures_and_unknown_layouts_are_left_alone():
    bert = tiny_base("bert")
    assert use_sdpa_attention(bert) == 0
    mpnet = tiny_base("mpnet")
    for module in mpnet.modules():
        if type(module).__name__ == "MPNetSelfAttention":
            del module.all_head_size  # as if another transformers version named it otherwise
    assert use_sdpa_attention(mpnet) == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_low_precision_stays_close(dtype):
    eager, ours = _pair()
    ids, mask = _padded_batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        expected = eager(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        got = ours(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, atol=0.1, rtol=0.05)
