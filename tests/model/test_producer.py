"""The engine's host side: tokenising on its own thread gives the same batches, ids, vectors and order
as tokenising inline and as the plain path; errors reach the caller, no thread leaks."""

import re
import threading

import numpy as np
import pytest
import torch
from conftest import PAPERS, make_tiny_model

from sciembed import EncodeOptions
from sciembed.data.records import normalize_whitespace
from sciembed.engine.backends import runner_for
from sciembed.engine.run import host_batches, plan_batches
from sciembed.engine.threads import ahead

MANY = [dict(p, paper_id=f"{p['paper_id']}-{i}") for i in range(9) for p in PAPERS]


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(formats=("proximity", "classification"))


def _batches(model, packed: bool, tokenize_ahead: int) -> list:
    options = EncodeOptions(
        batch_size=300, max_tokens=300, pipeline=True, group_size=7, packed=packed, tokenize_ahead=tokenize_ahead
    )
    runner = runner_for(model, "proximity", options)
    return list(host_batches(model, MANY, runner, plan_batches(runner, len(MANY), options)))


@pytest.mark.parametrize("packed", [False, True])
def test_overlapped_producer_gives_the_same_batches(model, packed):
    inline, overlapped = _batches(model, packed, 0), _batches(model, packed, 2)
    assert len(inline) == len(overlapped) > 1
    for a, b in zip(inline, overlapped, strict=True):
        if packed:
            assert torch.equal(a.buffer, b.buffer) and a[1:] == b[1:]
        else:
            assert all(torch.equal(x, y) for x, y in zip(a[0], b[0], strict=True)) and torch.equal(a[1], b[1])
    rows = [i for item in inline for i in (item.to("cpu")[1].tolist() if packed else item[1].tolist())]
    assert sorted(rows) == list(range(len(MANY)))


def test_group_tokens_equal_tokenize(model):
    texts = model.texts(MANY)
    flat, lengths = model.tokenize_flat(texts)
    ids = model.tokenize(texts)
    assert lengths.tolist() == [len(x) for x in ids]
    assert flat.tolist() == [t for x in ids for t in x]


@pytest.mark.parametrize("packed", [False, True])
def test_overlap_and_inline_encode_identically_in_input_order(model, packed):
    plain = model.encode(MANY, format="classification", batch_size=4)
    results = {}
    for depth in (0, 2):
        options = EncodeOptions(
            batch_size=300, max_tokens=300, pipeline=True, group_size=7, packed=packed, tokenize_ahead=depth
        )
        results[depth] = model.encode(MANY, format="classification", options=options)
    np.testing.assert_array_equal(results[2], results[0])
    np.testing.assert_allclose(results[2], plain, atol=2e-5, rtol=1e-4)


def test_overlapped_producer_reports_errors_and_leaves_no_threads(model):
    before = threading.active_count()
    options = EncodeOptions(pipeline=True, group_size=7)
    with pytest.raises(Exception):  # noqa: B017 - whatever the data layer raises, it reaches the caller
        model.encode([*MANY, 12345], options=options)
    model.encode(MANY, format="proximity", options=options)
    assert threading.active_count() == before


def test_ahead_hands_over_errors_in_order_and_stops_early():
    def items():
        yield from range(3)
        raise KeyError("broken input")

    seen = []
    with pytest.raises(KeyError, match="broken input"):
        for item in ahead(items(), 2, "test-ahead"):
            seen.append(item)
    assert seen == [0, 1, 2]
    before = threading.active_count()
    endless = ahead(ahead(iter(range(10**9)), 2, "inner"), 2, "outer")
    assert next(endless) == 0
    endless.close()  # stops and joins both threads
    assert threading.active_count() == before


def test_normalize_whitespace_matches_the_regex():
    pattern = re.compile(r"\s+")
    samples = ["", " ", "a", "  a  b\n\nc\t", "x\u00a0y\u2028z\x1c\x85w\u3000", "\r\n lead and trail \x0b\x0c"]
    for text in samples:
        assert normalize_whitespace(text) == pattern.sub(" ", text).strip()


def test_tokenising_processes_give_the_same_ids_and_vectors(model):
    """``tokenize_workers``: groups tokenised in spawned processes, in order, the same ids and vectors."""
    from sciembed.engine.run import token_groups

    inline = list(token_groups(model, MANY, None, 7))
    pooled = list(token_groups(model, MANY, None, 7, workers=1))  # one process: spawning is slow
    assert [g for g, *_ in pooled] == [g for g, *_ in inline]
    for (_, flat_a, len_a), (_, flat_b, len_b) in zip(inline, pooled, strict=True):
        assert np.array_equal(flat_a, flat_b) and np.array_equal(len_a, len_b)
    options = EncodeOptions(batch_size=300, max_tokens=300, pipeline=True, group_size=7)
    plain = model.encode(MANY, format="proximity", options=options)
    wide = model.encode(MANY, format="proximity", options=options.but(tokenize_workers=1))
    np.testing.assert_array_equal(plain, wide)
    with pytest.raises(ValueError, match="tokenize_workers"):
        EncodeOptions(tokenize_workers=-1)


def test_automatic_tokenising_processes_only_for_large_pipelined_calls_on_wide_hosts():
    from sciembed.engine.run import AUTO_MAX_WORKERS, AUTO_WORKERS_MIN_DOCS, auto_tokenize_workers

    big = AUTO_WORKERS_MIN_DOCS
    assert auto_tokenize_workers(True, big, cores=16, memo=True) == 8
    assert auto_tokenize_workers(True, big, cores=6, memo=True) == 3
    assert auto_tokenize_workers(True, big, cores=128, memo=True) == AUTO_MAX_WORKERS
    assert auto_tokenize_workers(True, big, cores=2, memo=True) == 0  # the in-process memo pays here
    assert auto_tokenize_workers(False, big, cores=16, memo=True) == 0  # CPU calls: the model is the bound
    assert auto_tokenize_workers(True, big - 1, cores=16, memo=True) == 0
    assert auto_tokenize_workers(True, big, cores=16, memo=False) == 0  # Rust on all cores already
    assert EncodeOptions().tokenize_workers is None  # automatic unless a call says


def test_processes_build_texts_and_name_a_bad_item(model):
    """Workers build the texts themselves (same ids as in process) and a bad paper's error names it."""
    from sciembed.engine.run import token_groups

    papers = [{"paper_id": str(i), "title": f"title {i}", "abstract": "words " * i} for i in range(20)]
    inline = list(token_groups(model, papers, None, 8))
    pooled = list(token_groups(model, papers, None, 8, workers=1))
    for (_, flat_a, len_a), (_, flat_b, len_b) in zip(inline, pooled, strict=True):
        assert np.array_equal(flat_a, flat_b) and np.array_equal(len_a, len_b)
    # Not waiting for the processes gives the same ids, whichever side tokenises.
    eager = list(token_groups(model, papers, None, 8, workers=1, wait_for_workers=False, texts_ahead=1))
    assert [len_b.tolist() for _, _, len_b in eager] == [len_a.tolist() for _, _, len_a in inline]
    bad = papers[:11] + [{"paper_id": "x", "title": ["not", "text"]}] + papers[11:]
    with pytest.raises(ValueError, match="item 11"):
        list(token_groups(model, bad, None, 8, workers=1))


def test_processes_start_by_themselves_only_under_a_guarded_main_script(tmp_path):
    """A spawned child re-imports the main script: automatic processes need its main guard."""
    from sciembed.engine.processes import _has_main_guard

    guarded = tmp_path / "guarded.py"
    guarded.write_text('import sciembed\n\nif __name__ == "__main__":\n    print(1)\n')
    bare = tmp_path / "bare.py"
    bare.write_text("import sciembed\nmodel = sciembed.load()\nmodel.encode(['x'] * 5000)\n")
    nested = tmp_path / "nested.py"  # a guard inside a function does not protect the module's top level
    nested.write_text('def main():\n    if __name__ == "__main__":\n        pass\n')
    assert _has_main_guard(str(guarded))
    assert not _has_main_guard(str(bare))
    assert not _has_main_guard(str(nested))
    assert not _has_main_guard(str(tmp_path / "missing.py"))
    from sciembed.engine.run import AUTO_WORKERS_MIN_DOCS, auto_tokenize_workers

    assert auto_tokenize_workers(True, AUTO_WORKERS_MIN_DOCS, cores=16, memo=True, can_spawn=False) == 0


def test_models_with_one_tokenizer_share_one_pool(model):
    from sciembed.engine.run import tokenizer_pool

    other = make_tiny_model(formats=("proximity",))
    assert tokenizer_pool(model, 1) is tokenizer_pool(other, 1)


def test_automatic_processes_follow_the_cores_a_call_may_use(model):
    """``host_cores`` (a Ray actor's share of its host) sizes the automatic tokeniser processes."""
    from sciembed.engine.run import AUTO_WORKERS_MIN_DOCS, has_wordpiece_memo

    assert has_wordpiece_memo(model)  # the tiny model's tokenizer is a BERT WordPiece
    count = AUTO_WORKERS_MIN_DOCS
    runner = runner_for(model, "proximity", EncodeOptions(pipeline=True))
    wide = plan_batches(runner, count, EncodeOptions(pipeline=True, host_cores=16), model)
    narrow = plan_batches(runner, count, EncodeOptions(pipeline=True, host_cores=4), model)
    explicit = plan_batches(runner, count, EncodeOptions(pipeline=True, host_cores=16, tokenize_workers=0), model)
    assert (wide.tokenize_workers, wide.wait_for_workers) == (8, False)
    assert narrow.tokenize_workers == 0 and explicit.tokenize_workers == 0
    with pytest.raises(ValueError, match="host_cores"):
        EncodeOptions(host_cores=0)
