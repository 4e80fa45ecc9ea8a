"""The pipelined path's producer: tokenising on its own thread (overlap) gives the same batches, ids,
vectors and order as tokenising inline and as the plain path; errors reach the caller, no thread leaks."""

import queue
import re
import threading

import numpy as np
import pytest
import torch
from conftest import PAPERS, make_tiny_model

from sciembed.data.records import normalize_whitespace
from sciembed.model import encoder as encoder_module

MANY = [dict(p, paper_id=f"{p['paper_id']}-{i}") for i in range(9) for p in PAPERS]


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(formats=("proximity", "classification"))


def _batches(model, packed: bool, overlap: bool) -> list:
    out: queue.Queue = queue.Queue()
    model.pipeline_group = 7
    try:
        model._produce_batches(MANY, 300, None, 300, False, out, threading.Event(), packed, overlap=overlap)
    finally:
        model.pipeline_group = None
    items = []
    while (item := out.get()) is not None:
        assert not isinstance(item, BaseException), item
        items.append(item)
    return items


@pytest.mark.parametrize("packed", [False, True])
def test_overlapped_producer_gives_the_same_batches(model, packed):
    inline, overlapped = _batches(model, packed, False), _batches(model, packed, True)
    assert len(inline) == len(overlapped) > 1
    for a, b in zip(inline, overlapped, strict=True):
        if packed:
            assert torch.equal(a[0], b[0]) and a[1] == b[1]
        else:
            assert torch.equal(a[0], b[0]) and all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    rows = [i for item in inline for i in (unpack_rows(item) if packed else item[0].tolist())]
    assert sorted(rows) == list(range(len(MANY)))


def unpack_rows(item) -> list[int]:
    buffer, (count, total, _) = item
    return buffer[3 * total + count + 1 :].tolist()


def test_group_tokens_equal_tokenize(model):
    texts = model.texts(MANY)
    flat, lengths = model._tokenize_group(texts)
    ids = model.tokenize(texts)
    assert lengths.tolist() == [len(x) for x in ids]
    assert flat.tolist() == [t for x in ids for t in x]


@pytest.mark.parametrize("packed", [False, True])
def test_overlap_and_inline_encode_identically_in_input_order(model, packed, monkeypatch):
    plain = model.encode(MANY, format="classification", batch_size=4)
    results = {}
    model.pipeline, model.pipeline_group, model.packed = True, 7, packed
    try:
        for overlap in (False, True):
            monkeypatch.setattr(encoder_module, "PIPELINE_OVERLAP", overlap)
            results[overlap] = model.encode(MANY, format="classification", batch_size=300, max_tokens=300)
    finally:
        model.pipeline, model.pipeline_group, model.packed = None, None, None
    np.testing.assert_array_equal(results[True], results[False])
    np.testing.assert_allclose(results[True], plain, atol=2e-5, rtol=1e-4)


def test_overlapped_producer_reports_errors_and_leaves_no_threads(model):
    before = threading.active_count()
    model.pipeline, model.pipeline_group = True, 7
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the data layer raises, it reaches the caller
            model.encode([*MANY, 12345])
        model.encode(MANY, format="proximity")
    finally:
        model.pipeline, model.pipeline_group = None, None
    assert threading.active_count() == before


def test_normalize_whitespace_matches_the_regex():
    pattern = re.compile(r"\s+")
    samples = ["", " ", "a", "  a  b\n\nc\t", "x\u00a0y\u2028z\x1c\x85w\u3000", "\r\n lead and trail \x0b\x0c"]
    for text in samples:
        assert normalize_whitespace(text) == pattern.sub(" ", text).strip()
