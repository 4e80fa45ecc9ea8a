"""The unpadded (packed) forward computes the same embeddings and gradients as the padded HF forward."""

import numpy as np
import pytest
import torch
from conftest import PAPERS, make_tiny_model, minilm_tokenizer

from sciembed import EncodeOptions
from sciembed.engine.backends.torch import uses_packed
from sciembed.model.packed import _padded_attention, pack, pack_host, supports_packed, unpack

MANY = [dict(p, paper_id=f"{p['paper_id']}-{i}") for i in range(5) for p in PAPERS]


PACKED = EncodeOptions(pipeline=True, packed=True, group_size=7)


def _encode_both(model, papers, fmt, **kwargs):
    plain = model.encode(papers, format=fmt, options=EncodeOptions(packed=False, batch_size=4))
    assert uses_packed(model, PACKED)
    packed = model.encode(papers, format=fmt, options=PACKED.but(**kwargs))
    return plain, packed


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_packed_encode_matches_plain_with_adapters(pooling):
    model = make_tiny_model(pooling=pooling, normalize=pooling == "mean", formats=("proximity", "classification"))
    for fmt in ("proximity", "classification"):
        plain, packed = _encode_both(model, MANY, fmt, max_tokens=300, batch_size=300)
        np.testing.assert_allclose(packed, plain, atol=2e-5, rtol=1e-4)


def test_packed_encode_without_adapters():
    model = make_tiny_model()
    plain, packed = _encode_both(model, MANY, "proximity")
    np.testing.assert_allclose(packed, plain, atol=2e-5, rtol=1e-4)


def test_roberta_positions_and_gradients_match():
    from transformers import RobertaConfig, RobertaModel

    from sciembed.model import BottleneckConfig, SciEmbedConfig, SciEmbedModel

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=520, pad_token_id=1,
    )  # fmt: skip
    base = RobertaModel(config, add_pooling_layer=False).eval()
    model = SciEmbedModel(base, minilm_tokenizer(), SciEmbedConfig(pooling="mean", name="tiny-roberta"))
    model.add_adapter("proximity", BottleneckConfig(reduction_factor=4))
    assert supports_packed(model.base)
    seqs = model.tokenize(model.texts(MANY[:6]))
    padded = model.collate(seqs)
    # positions: RoBERTa counts from padding_idx + 1; no real token is the pad id here
    assert all(1 not in s for s in seqs)
    ref = model(padded["input_ids"], padded["attention_mask"], format="proximity")
    ref.square().sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    out = model.forward_packed(pack(seqs), format="proximity")
    out.square().sum().backward()
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=1e-5, rtol=1e-3)


def test_pack_layout_and_padded_attention():
    seqs = [[5, 6, 7], [8], [9, 10]]
    buffer, batch, total, longest = pack_host(seqs, index=[4, 2, 0])
    packed, index = unpack(buffer, batch, total, longest)
    assert packed.input_ids.tolist() == [5, 6, 7, 8, 9, 10]
    assert packed.local.tolist() == [0, 1, 2, 0, 0, 1]
    assert packed.segments.tolist() == [0, 0, 0, 1, 2, 2]
    assert packed.cu_seqlens.tolist() == [0, 3, 4, 6] and packed.cu_seqlens.dtype == torch.int32
    assert index.tolist() == [4, 2, 0] and (batch, total, longest) == (3, 6, 3)
    as_arrays = pack_host([np.asarray(s, dtype=np.int32) for s in seqs])[0]
    assert as_arrays.tolist() == pack_host(seqs)[0].tolist()
    q, k, v = torch.randn(3, 6, 2, 4).unbind(0)
    out = _padded_attention(q, k, v, packed, 0.0)
    for start, stop in ((0, 3), (3, 4), (4, 6)):
        one = torch.nn.functional.scaled_dot_product_attention(*(x[start:stop].transpose(0, 1) for x in (q, k, v)))
        torch.testing.assert_close(out[start:stop], one.transpose(0, 1))


LONG = ["a " * 300, "graph " * 140 + "neural networks", "one", "Two words"]  # past 128 tokens: every bucket


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_mpnet_packed_matches_the_plain_forward_and_its_gradients(pooling):
    """MPNet (relative position bias, positions from padding_idx + 1, no token types) runs packed:
    the same vectors and gradients as the padded Hugging Face forward, through the engine too."""
    model = make_tiny_model("mpnet", pooling=pooling, formats=("proximity",))
    assert model.supports_packed and uses_packed(model, PACKED)
    texts = model.texts(MANY[:6]) + LONG
    seqs = model.tokenize(texts)
    assert max(map(len, seqs)) > 256 and all(1 not in s for s in seqs)  # no real token is the pad id 1
    padded = model.collate(seqs)
    ref = model(padded["input_ids"], padded["attention_mask"], format="proximity")
    ref.square().sum().backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert any("relative_attention_bias" in n for n in ref_grads)
    model.zero_grad()
    out = model.forward_packed(pack(seqs), format="proximity")
    out.square().sum().backward()
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    assert set(ref_grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in ref_grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=2e-5, rtol=1e-3)
    model.zero_grad()
    plain, packed = _encode_both(model, MANY + [{"title": t} for t in LONG], "proximity")
    np.testing.assert_allclose(packed, plain, atol=2e-5, rtol=1e-4)


def test_mpnet_bias_table_is_the_models_own_bias():
    """The packed forward's bias table holds exactly the bias Hugging Face's MPNet adds, and packed
    attention with it equals per-document attention with that bias (CLS's one-query layer too)."""
    from sciembed.model.packed import first_token_attention, packed_attention
    from sciembed.model.relative_bias import relative_bias_table

    base = make_tiny_model("mpnet").base
    length = 300
    table = relative_bias_table(base, length, torch.device("cpu"))
    want = base.encoder.compute_position_bias(torch.zeros(1, length, 4))[0]  # (heads, L, L)
    got = table[:, torch.arange(length)[None, :] - torch.arange(length)[:, None] + length - 1]
    assert torch.equal(got, want) and len(torch.unique(table)) > 16  # many buckets are in use
    assert relative_bias_table(make_tiny_model().base, length, torch.device("cpu")) is None  # BERT: none
    packed = pack([list(range(5, 5 + n)) for n in (3, 140, 1, 300)])
    q, k, v = torch.randn(3, packed.input_ids.shape[0], 2, 8).unbind(0)
    table = relative_bias_table(base, packed.max_len, torch.device("cpu"))
    out = packed_attention(q, k, v, packed, bias=table)
    for start, stop in zip(packed.cu_seqlens[:-1].tolist(), packed.cu_seqlens[1:].tolist(), strict=True):
        n = stop - start
        mask = want[:, :n, :n]
        one = torch.nn.functional.scaled_dot_product_attention(
            *(x[start:stop].transpose(0, 1) for x in (q, k, v)), attn_mask=mask
        )
        torch.testing.assert_close(out[start:stop], one.transpose(0, 1))
    starts = packed.cu_seqlens[:-1].long()
    first = first_token_attention(q.index_select(0, starts), k, v, packed, bias=table)
    torch.testing.assert_close(first, out.index_select(0, starts))


@pytest.mark.parametrize("max_length", [512, 24])
def test_direct_tokenizer_matches_the_wrapper(max_length):
    model = make_tiny_model(max_length=max_length)
    texts = model.texts(MANY) + ["", "Ünïcödé ACCENTS and 中文 text", "a " * 600]
    assert model._backend_tokenizer() is not None
    wrapper = model.tokenizer(
        texts, truncation=True, max_length=max_length, add_special_tokens=True,
        return_attention_mask=False, return_token_type_ids=False,
    )["input_ids"]  # fmt: skip
    assert model.tokenize(texts) == wrapper


def test_compiled_packed_forward_traces_and_matches():
    """``compile_packed`` (Dynamo tracing with dynamic shapes, eager backend on CPU) gives the same vectors."""
    model = make_tiny_model(formats=("proximity",))
    model.compile_packed(backend="eager")
    with torch.no_grad():
        plain, packed = _encode_both(model, MANY, "proximity", max_tokens=300, batch_size=300)
    assert model.compiled  # no fallback happened
    np.testing.assert_allclose(packed, plain, atol=2e-5, rtol=1e-4)


def test_compile_failure_falls_back_to_eager_with_a_warning():
    model = make_tiny_model(formats=("proximity",))

    def broken(graph, example_inputs):  # a torch.compile backend that cannot compile
        raise RuntimeError("no compiler here")

    model.compile_packed(backend=broken)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        plain, packed = _encode_both(model, MANY, "proximity")
    assert not model.compiled
    np.testing.assert_allclose(packed, plain, atol=2e-5, rtol=1e-4)


def test_gelu_epilogue_matches_the_modules_and_applies_only_to_gpu_inference():
    from sciembed.model.packed import gelu_epilogue_applies, gelu_epilogue_forward, intermediate_forward

    model = make_tiny_model()
    block = model.base.encoder.layer[0].intermediate
    hidden = torch.randn(37, block.dense.in_features)
    with torch.no_grad():
        expected = block(hidden)
        # the one-GEMM form (bias and GELU in the epilogue) computes the same function as dense + GELU
        assert torch.allclose(gelu_epilogue_forward(block, hidden), expected, atol=1e-5)
        # on the CPU the modules run as they are
        assert not gelu_epilogue_applies(block, hidden.half())
        assert torch.equal(intermediate_forward(block, hidden), expected)

    class HalfOnCuda:  # what the conditions read of a CUDA fp16 activation (no GPU on CI)
        is_cuda, dtype = True, torch.float16

        def dim(self):
            return 2

    with torch.no_grad():
        assert gelu_epilogue_applies(block, HalfOnCuda())
        relu = type(block)(model.base.config)
        relu.intermediate_act_fn = torch.nn.ReLU()
        assert not gelu_epilogue_applies(relu, HalfOnCuda())  # only exact GELU is replaced
    assert not gelu_epilogue_applies(block, HalfOnCuda())  # with gradients (training) the modules run


def test_first_tokens_only_last_layer_is_the_same_function():
    """CLS pooling runs the last layer for each document's first token only: the same vectors and
    gradients as the whole last layer, and the first-token attention equals the full one's rows."""
    from sciembed.model.packed import first_token_attention, packed_attention, packed_hidden

    model = make_tiny_model(pooling="cls", formats=("proximity",))
    seqs = model.tokenize(model.texts(MANY[:7]))
    packed = pack(seqs)
    starts = packed.cu_seqlens[:-1].long()
    adapters = model.adapters["proximity"]
    full = packed_hidden(model.base, packed, adapters).index_select(0, starts)
    full.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    first = packed_hidden(model.base, packed, adapters, first_tokens=True)
    first.square().sum().backward()
    assert first.shape == (len(seqs), model.dimension)
    torch.testing.assert_close(first, full, atol=1e-5, rtol=1e-4)
    assert grads and set(grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in grads.items():  # summed in another order: float rounding of near-zero entries
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=5e-5, rtol=1e-3)
    q, k, v = torch.randn(3, packed.input_ids.shape[0], 2, 4).unbind(0)
    torch.testing.assert_close(
        first_token_attention(q.index_select(0, starts), k, v, packed),
        packed_attention(q, k, v, packed).index_select(0, starts),
    )


def test_cpu_default_is_packed_for_cls_pooling_and_the_same_whatever_the_threads():
    """On the CPU the packed forward is the default for CLS pooling (measured faster there), mean
    pooling keeps the padded one; its vectors are bit-identical with one and two threads (the
    resume guarantee), which the first-token last layer's few-row products were not."""
    default = EncodeOptions(batch_size=4)
    cls, mean = make_tiny_model(pooling="cls", formats=("proximity",)), make_tiny_model(pooling="mean")
    assert uses_packed(cls, default) and not uses_packed(mean, default)
    assert not uses_packed(cls, default.but(packed=False)) and uses_packed(mean, default.but(packed=True))
    assert uses_packed(make_tiny_model("mpnet"), default)  # MPNet with CLS pooling too
    threads = torch.get_num_threads()
    for model in (cls, make_tiny_model("mpnet", formats=("proximity",))):
        try:
            runs = []
            for count in (1, 2):
                torch.set_num_threads(count)
                runs.append(model.encode(MANY * 4, format="proximity", options=default))
        finally:
            torch.set_num_threads(threads)
        assert np.array_equal(runs[0], runs[1])
        padded = model.encode(MANY * 4, format="proximity", options=default.but(packed=False))
        np.testing.assert_allclose(runs[0], padded, atol=2e-5, rtol=1e-4)


def test_document_sums_padded_order_equals_index_add_with_gradients():
    """CUDA's mean pooling sums per-document padded rows (one fixed order: index_add_ adds with
    atomics there); both give the same sums and the same gradients."""
    from sciembed.model.packed import document_sums

    packed = pack([[5, 6, 7], [8], [9, 10, 11, 12, 13]])
    hidden = torch.randn(len(packed.input_ids), 16, dtype=torch.float64, requires_grad=True)
    by_add = document_sums(hidden, packed, padded=False)
    by_rows = document_sums(hidden, packed, padded=True)
    torch.testing.assert_close(by_rows, by_add, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(by_rows[1], hidden[3].float())  # the one-token document
    (grad_add,) = torch.autograd.grad(by_add.square().sum(), hidden)
    (grad_rows,) = torch.autograd.grad(by_rows.square().sum(), hidden)
    torch.testing.assert_close(grad_rows, grad_add, rtol=1e-5, atol=1e-5)


def test_mpnet_trains_with_length_buckets_not_packed():
    """Inference runs MPNet packed; training keeps the length buckets (measured faster on an H200)."""
    from sciembed.model.packed import trains_packed

    assert trains_packed(make_tiny_model().base) and supports_packed(make_tiny_model("mpnet").base)
    assert not trains_packed(make_tiny_model("mpnet").base)
