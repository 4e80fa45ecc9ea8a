"""``encode_stream``: chunks through one pipeline give each chunk's own ``encode`` vectors, bit for bit."""

import numpy as np
import pytest

from sciembed.engine import EncodeOptions
from sciembed.engine.stream import ChunkTiming, encode_stream

PIPELINED = EncodeOptions(batch_size=16, max_tokens=400, pipeline=True, group_size=8)


def _chunks(sizes):
    first, out = 0, []
    for k, size in enumerate(sizes):
        out.append((f"chunk{k}", [f"paper {i} about " + "words " * (i % 11) for i in range(first, first + size)]))
        first += size
    return out


@pytest.mark.parametrize("workers", [0, 1])
def test_each_chunk_gets_the_vectors_of_its_own_call_in_order(tiny_adapter_model, workers):
    model = tiny_adapter_model
    options = PIPELINED.but(tokenize_workers=workers)
    chunks = _chunks([0, 19, 0, 7, 33, 1])  # empty chunks (a job's finished ones) first and between
    timings: list[ChunkTiming] = []
    out = list(encode_stream(model, chunks, "classification", options, timings))
    assert [key for key, _ in out] == [key for key, _ in chunks]
    for (_, vectors), (_, papers) in zip(out, chunks, strict=True):
        assert vectors.shape == (len(papers), model.dimension) and vectors.dtype == np.float32
        if papers:  # the same groups and batches as a call of its own: the same bits
            np.testing.assert_array_equal(vectors, model.encode(papers, format="classification", options=options))
    assert len(timings) == len(chunks) and all(t.seconds >= t.wait_for_batches_s >= 0 for t in timings)


def test_without_the_pipeline_each_chunk_is_one_call(tiny_model):
    chunks = _chunks([5, 0, 9])
    options = EncodeOptions(batch_size=4)
    out = list(encode_stream(tiny_model, chunks, "proximity", options))
    for (_, vectors), (_, papers) in zip(out, chunks, strict=True):
        np.testing.assert_array_equal(vectors, tiny_model.encode(papers, options=options) if papers else vectors)
        assert len(vectors) == len(papers)


def test_an_empty_stream_and_a_bad_item_and_a_bad_format(tiny_model, tiny_adapter_model):
    assert list(encode_stream(tiny_model, [], "proximity", PIPELINED)) == []
    with pytest.raises(ValueError, match="format"):
        list(encode_stream(tiny_adapter_model, _chunks([3]), "no-such-format", PIPELINED))
    bad = [("a", ["fine"]), ("b", ["fine", {"paper_id": "x", "title": ["not", "text"]}])]
    stream = encode_stream(tiny_model, bad, "proximity", PIPELINED)
    key, vectors = next(stream)  # the chunk before the bad item comes out whole
    assert key == "a" and vectors.shape == (1, tiny_model.dimension)
    with pytest.raises(ValueError, match="item 1"):
        next(stream)
