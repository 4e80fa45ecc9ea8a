"""The pipelined (GPU-style) encode path and token-budget batching agree with the plain path on CPU."""

import numpy as np
import pytest
import torch
from conftest import PAPERS, make_tiny_model

from sciembed import EncodeOptions
from sciembed.model import length_sorted_batches

MANY = [dict(p, paper_id=f"{p['paper_id']}-{i}") for i in range(9) for p in PAPERS]
PIPELINED = EncodeOptions(pipeline=True, group_size=7)  # many groups, each sorted on its own


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(formats=("proximity", "classification"))


def test_pipelined_path_is_identical_with_the_same_batches(model):
    plain = model.encode(MANY, format="proximity", batch_size=4)
    one_group = EncodeOptions(pipeline=True, group_size=10**9)  # exactly the plain path's batches
    pipelined = model.encode(MANY, format="proximity", batch_size=4, options=one_group)
    np.testing.assert_array_equal(pipelined, plain)


def test_pipelined_path_keeps_input_order_across_groups(model):
    plain = model.encode(MANY, format="classification", batch_size=4)
    pipelined = model.encode(MANY, format="classification", options=PIPELINED.but(batch_size=4, max_tokens=300))
    np.testing.assert_allclose(pipelined, plain, atol=1e-5)
    one = model.encode([MANY[3]], format="classification")[0]
    np.testing.assert_allclose(pipelined[3], one, atol=1e-5)


def test_pipelined_path_reports_errors_and_bad_formats(model):
    with pytest.raises(ValueError, match="no 'regression' adapter"):
        model.encode(MANY, format="regression", options=PIPELINED)
    with pytest.raises(Exception):  # noqa: B017 - whatever the data layer raises, it reaches the caller
        model.encode([*MANY, 12345], options=PIPELINED)
    assert model.encode([], format="proximity", options=PIPELINED).shape == (0, 32)


def test_token_budget_batching_matches_plain_batching(model):
    plain = model.encode(MANY, batch_size=8)
    budget = model.encode(MANY, batch_size=1000, max_tokens=256)
    np.testing.assert_allclose(budget, plain, atol=1e-5)
    lengths = [len(x) for x in model.tokenize(model.texts(MANY))]
    batches = length_sorted_batches(lengths, batch_size=1000, max_tokens=256)
    assert sorted(i for b in batches for i in b) == list(range(len(MANY)))
    assert all(len(b) * max(lengths[i] for i in b) <= 256 or len(b) == 1 for b in batches)


def test_bf16_agrees_with_fp32_on_cpu(model):
    """The GPU path computes in bf16; on a tiny random model bf16 stays close to fp32."""
    reference = model.encode(MANY, batch_size=8)
    low = make_tiny_model(formats=("proximity", "classification")).place("cpu", torch.bfloat16)
    vectors = low.encode(MANY, options=PIPELINED.but(batch_size=8, max_tokens=512))
    cosine = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    assert vectors.dtype == np.float32 and cosine.min() > 0.99


def test_options_are_frozen_and_keywords_override_them(model):
    options = EncodeOptions(batch_size=4)
    with pytest.raises(AttributeError):
        options.batch_size = 8  # type: ignore[misc]
    assert options.but(batch_size=8).batch_size == 8 and options.batch_size == 4
    with pytest.raises(ValueError, match="batch_size"):
        EncodeOptions(batch_size=0)
    np.testing.assert_array_equal(
        model.encode(MANY, options=options, batch_size=6), model.encode(MANY, options=EncodeOptions(batch_size=6))
    )
