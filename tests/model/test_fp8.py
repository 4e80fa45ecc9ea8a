"""FP8 matrix products of the packed forward (run on CPU here: torch's CPU ``_scaled_mm`` computes the
same function as the GPU's FP8 tensor cores, which the GPU benchmark measures)."""

import pytest
import torch
from conftest import PAPERS, minilm_tokenizer
from transformers import BertConfig, BertModel

from sciembed.model import BottleneckConfig, SciEmbedConfig, SciEmbedModel
from sciembed.model.fp8 import FP8_MAX, Fp8Linear, fp8_available, quantize_rows
from sciembed.model.packed import pack

MANY = [dict(p, paper_id=f"{p['paper_id']}-{i}") for i in range(3) for p in PAPERS]


def _fp8_sized_model(pooling: str = "cls") -> SciEmbedModel:
    """FP8 wants matrix dimensions that are multiples of 16 (the tiny fixtures' 37 is not)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    model = SciEmbedModel(
        BertModel(config, add_pooling_layer=False).eval(), minilm_tokenizer(), SciEmbedConfig(pooling=pooling)
    )
    stack = model.add_adapter("proximity", BottleneckConfig(reduction_factor=4))
    for param in stack.parameters():
        torch.nn.init.normal_(param, std=0.2)
    return model.eval()


def test_quantize_rows_scales_each_row_to_the_fp8_range_and_pads():
    x = torch.tensor([[1.0, -2.0, 0.5], [100.0, 3.0, -0.25]])
    quantized, scale = quantize_rows(x, 16)
    assert quantized.dtype == torch.float8_e4m3fn and quantized.shape == (16, 3) and scale.shape == (16, 1)
    assert torch.equal(quantized[:2].float().abs().amax(dim=1), torch.full((2,), FP8_MAX))
    assert torch.count_nonzero(quantized[2:].float()) == 0
    torch.testing.assert_close(quantized[:2].float() * scale[:2], x, rtol=0.07, atol=0.0)


def test_fp8_linear_is_close_to_the_linear_and_refuses_unaligned_weights():
    torch.manual_seed(1)
    linear = torch.nn.Linear(64, 96)
    x = torch.randn(5, 7, 64)
    out = Fp8Linear.of(linear.weight, linear.bias)(x)
    assert out.shape == (5, 7, 96)
    cosine = torch.nn.functional.cosine_similarity(out.flatten(0, 1), linear(x).flatten(0, 1).detach())
    assert cosine.min() > 0.995
    assert not torch.allclose(out, linear(x))  # really rounded, not the fp32 product
    with pytest.raises(ValueError, match="multiples of 16"):
        Fp8Linear.of(torch.randn(37, 64), None)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_fp8_packed_forward_is_close_to_the_plain_one(pooling):
    model = _fp8_sized_model(pooling)
    seqs = model.tokenize(model.texts(MANY))
    packed = pack(seqs)
    with torch.inference_mode():
        exact = model.forward_packed(packed, format="proximity")
        fp8 = model.forward_packed(packed, format="proximity", fp8=model.fp8_layers())
    cosine = torch.nn.functional.cosine_similarity(fp8, exact)
    assert cosine.min() > 0.99, cosine
    assert (fp8 - exact).abs().max() > 1e-4  # the FP8 products were used


def test_fp8_weights_are_remade_when_a_weight_changes():
    model = _fp8_sized_model()
    first = model.fp8_layers()
    assert model.fp8_layers() is first  # cached
    with torch.no_grad():
        model.base.encoder.layer[0].intermediate.dense.weight.mul_(2.0)
    again = model.fp8_layers()
    assert again is not first
    assert torch.equal(again[0].intermediate.scale, first[0].intermediate.scale * 2)


def test_encode_option_fp8_is_ignored_where_fp8_cannot_run():
    model = _fp8_sized_model()
    assert not fp8_available("cpu")
    from sciembed import EncodeOptions

    plain = model.encode(MANY, format="proximity")
    asked = model.encode(MANY, format="proximity", options=EncodeOptions(fp8=True))
    assert (plain == asked).all()
