import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from sciembed.data import Paper
from sciembed.model import canonical_format, length_sorted_batches
from sciembed.model.pooling import pool


def test_encode_returns_float32_in_input_order_independent_of_batching(tiny_model, papers):
    together = tiny_model.encode(papers, batch_size=2)
    assert together.dtype == np.float32 and together.shape == (5, 32)
    one_by_one = np.stack([tiny_model.encode([p], batch_size=1)[0] for p in papers])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert np.abs(together[0] - together[1]).max() > 1e-3  # different papers, different vectors


def test_encode_accepts_papers_dicts_and_query_strings(tiny_model):
    paper = Paper("x", title="Graph networks", abstract="We study graphs.")
    as_dict = {"paper_id": "x", "title": "Graph networks", "abstract": "We study graphs."}
    vectors = tiny_model.encode([paper, as_dict, "Graph networks [SEP] We study graphs."])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)  # the text is title [SEP] abstract


def test_truncation_to_max_length(tiny_model):
    long = {"paper_id": "l", "title": "word " * 2000}
    ids = tiny_model.tokenize(tiny_model.texts([long]))
    assert len(ids[0]) == 512
    tiny_model.config.max_length = 16
    assert len(tiny_model.tokenize(tiny_model.texts([long]))[0]) == 16


def test_length_sorted_batches_cover_all_and_respect_token_budget():
    lengths = [5, 100, 7, 60, 3, 100, 20]
    batches = length_sorted_batches(lengths, batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(7))
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    budget = length_sorted_batches(lengths, batch_size=100, max_tokens=200)
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in budget)


def test_pooling_modes():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0]]
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 3.0]]
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(hidden, mask, "max")


def test_normalize_gives_unit_vectors(papers):
    model = make_tiny_model(pooling="mean", normalize=True)
    norms = np.linalg.norm(model.encode(papers), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_formats_and_aliases_select_adapters(tiny_adapter_model, papers):
    prx = tiny_adapter_model.encode(papers, format="proximity")
    np.testing.assert_array_equal(prx, tiny_adapter_model.encode(papers, format="[PRX]"))
    outs = {f: tiny_adapter_model.encode(papers, format=f) for f in ("classification", "regression", "adhoc_query")}
    for vectors in outs.values():
        assert np.abs(vectors - prx).max() > 1e-3
    assert canonical_format("[QRY]") == "adhoc_query"
    with pytest.raises(ValueError, match="unknown task format"):
        tiny_adapter_model.encode(papers, format="summarize")


def test_model_without_adapters_serves_every_format(tiny_model, papers):
    base = tiny_model.encode(papers, format="proximity")
    np.testing.assert_array_equal(base, tiny_model.encode(papers, format="classification"))


def test_missing_adapter_is_an_error(papers):
    model = make_tiny_model(formats=("proximity",))
    with pytest.raises(ValueError, match="no 'regression' adapter"):
        model.encode(papers, format="regression")


def test_adapter_leaves_base_parameters_untouched(papers):
    plain = make_tiny_model(seed=3)
    with_adapter = make_tiny_model(seed=3, formats=("proximity",))
    assert plain.base.state_dict().keys() == with_adapter.base.state_dict().keys()
    for key, value in plain.base.state_dict().items():
        assert torch.equal(value, with_adapter.base.state_dict()[key])
    # the base output of the adapter model equals the plain model's when no adapter is active
    batch = plain.collate(plain.tokenize(plain.texts(papers)))
    np.testing.assert_allclose(
        plain(**batch).detach().numpy(), with_adapter(**batch, format=None).detach().numpy(), atol=1e-6
    )


def test_mpnet_encoder_with_adapters(papers):
    model = make_tiny_model(kind="mpnet", formats=("proximity", "classification"))
    prx = model.encode(papers, format="proximity")
    clf = model.encode(papers, format="classification")
    assert prx.shape == (5, 32) and np.abs(prx - clf).max() > 1e-3


def test_fingerprint_changes_with_weights_and_settings(tiny_model):
    first = tiny_model.fingerprint
    assert first == tiny_model.fingerprint and len(first) == 64
    tiny_model.config.pooling = "mean"
    assert tiny_model.fingerprint != first  # no cache to clear from outside
    tiny_model.config.pooling = "cls"
    assert tiny_model.fingerprint == first
    with torch.no_grad():  # an in-place weight change (what an optimiser step does)
        next(tiny_model.parameters()).add_(0.01)
    changed = tiny_model.fingerprint
    assert changed != first
    tiny_model.place("cpu", "bf16")  # moving is not a weight change
    assert tiny_model.fingerprint == changed
    tiny_model.add_adapter("proximity")
    assert tiny_model.fingerprint != changed


def test_both_backends_are_encoders(tiny_model):
    import sciembed

    assert isinstance(tiny_model, sciembed.Encoder)
    assert tiny_model.dimension == 32 and tiny_model.name == "tiny" and tiny_model.formats == []


def test_dtype_and_device_are_explicit(tiny_model, papers):
    tiny_model.place("cpu", "bf16")
    assert tiny_model.dtype == torch.bfloat16
    vectors = tiny_model.encode(papers)
    assert vectors.dtype == np.float32
    tiny_model.encode(papers, device="cpu")  # naming the device it is on keeps the chosen dtype
    assert tiny_model.dtype == torch.bfloat16
    tiny_model.place("cpu", "fp32")
    assert tiny_model.dtype == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        tiny_model.place("cpu", "int3")


def test_fp16_overflow_recomputes_that_call_in_bf16(papers):
    """The bf16 fallback applies to the overflowing call only: the model stays in fp16 afterwards."""
    from conftest import make_tiny_model

    model = make_tiny_model().place("cpu", "fp16")
    with torch.no_grad():
        model.base.embeddings.LayerNorm.weight.fill_(6e4)  # activations grow past fp16's range (65504)
    before = model.fingerprint
    with pytest.warns(RuntimeWarning, match="overflowed"):
        vectors = model.encode(papers)
    assert model.dtype == torch.float16 and model.fingerprint == before
    assert np.isfinite(vectors).all()
    bf16 = model.copy_as("bf16")
    np.testing.assert_array_equal(vectors, bf16.encode(papers))  # what the fallback computed
    assert model.dtype == torch.float16


def test_concurrent_calls_with_different_formats_keep_their_adapters(tiny_adapter_model, papers):
    """The active adapter is per thread: two threads encoding different formats at once get what each
    would get alone (padded path: the router; packed path: the adapters are an argument)."""
    import threading

    from sciembed import EncodeOptions

    for options in (EncodeOptions(batch_size=1), EncodeOptions(batch_size=1, packed=True)):
        alone = {
            f: tiny_adapter_model.encode(papers * 4, format=f, options=options) for f in ("proximity", "regression")
        }
        got: dict[str, list[np.ndarray]] = {f: [] for f in alone}
        start = threading.Barrier(2)

        def work(fmt: str, options=options, got=got, start=start) -> None:
            start.wait()
            for _ in range(5):
                got[fmt].append(tiny_adapter_model.encode(papers * 4, format=fmt, options=options))

        threads = [threading.Thread(target=work, args=(f,)) for f in alone]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for fmt, runs in got.items():
            assert len(runs) == 5 and all(np.array_equal(run, alone[fmt]) for run in runs)
