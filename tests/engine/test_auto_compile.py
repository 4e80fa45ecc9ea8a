"""The automatic compile choice: only for jobs large enough to pay for compiling, only where it can run."""

import gzip
import importlib.util
import json
from concurrent.futures import Future

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PAPERS, make_tiny_model

from sciembed import EncodeOptions
from sciembed.data import has_at_least
from sciembed.embed.job import _count_ahead, _job_compile, embed_file
from sciembed.engine.backends.torch import AUTO_COMPILE_MIN_DOCS, auto_compile

TRITON = importlib.util.find_spec("triton") is not None


def _jsonl(path, rows: int, gz: bool = False):
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for i in range(rows):
            handle.write(json.dumps({"paper_id": f"p{i}", "title": f"title {i}"}) + "\n")
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_has_at_least_counts_json_lines(tmp_path, gz):
    path = _jsonl(tmp_path / ("p.jsonl.gz" if gz else "p.jsonl"), 300, gz)
    assert has_at_least(path, 300, chunk_bytes=64)
    assert has_at_least(path, 10, chunk_bytes=64)
    assert not has_at_least(path, 301, chunk_bytes=64)
    assert has_at_least(path, 300) and not has_at_least(path, 301)  # one block


def test_has_at_least_decides_from_the_first_block_when_the_estimate_is_far_from_the_count(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl.gz", 6000, True)
    data = path.read_bytes()
    damaged = tmp_path / "tail-damaged.jsonl.gz"  # counting to the end would fail on the damage (False)
    damaged.write_bytes(data[: len(data) // 2] + bytes(b ^ 0xFF for b in data[len(data) // 2 :]))
    block = len(data) // 3  # ~2,000 lines in the first block: a whole-file estimate of ~6,000
    assert not has_at_least(damaged, 10**6, chunk_bytes=block)  # far fewer: decided at once
    assert has_at_least(damaged, 2500, chunk_bytes=block, margin=2)  # far more: decided at once
    assert not has_at_least(damaged, 4000, chunk_bytes=block, margin=2)  # within the margin: counted, damage
    assert has_at_least(path, 6000, chunk_bytes=block) and not has_at_least(path, 6001, chunk_bytes=block)


def test_has_at_least_counts_every_gzip_member_and_refuses_damage(tmp_path):
    one, two = _jsonl(tmp_path / "a.jsonl.gz", 120, True), _jsonl(tmp_path / "b.jsonl.gz", 80, True)
    both = tmp_path / "both.jsonl.gz"  # concatenated members (what `cat a.gz b.gz` writes) are one file
    both.write_bytes(one.read_bytes() + two.read_bytes())
    for chunk_bytes in (16, 64, 1 << 22):
        assert has_at_least(both, 200, chunk_bytes=chunk_bytes)
        assert not has_at_least(both, 201, chunk_bytes=chunk_bytes)
    broken = tmp_path / "broken.jsonl.gz"
    data = one.read_bytes()
    broken.write_bytes(data[:20] + bytes(b ^ 0xFF for b in data[20:40]) + data[40:])
    assert not has_at_least(broken, 10**6)  # damaged: never large (the reader names the damage itself)


def test_has_at_least_reads_a_parquet_row_count_and_refuses_json_documents(tmp_path):
    pq.write_table(pa.table({"paper_id": [f"p{i}" for i in range(50)], "title": ["t"] * 50}), tmp_path / "p.parquet")
    assert has_at_least(tmp_path / "p.parquet", 50) and not has_at_least(tmp_path / "p.parquet", 51)
    (tmp_path / "p.json").write_text(json.dumps([{"paper_id": "a", "title": "t"}] * 5))
    assert not has_at_least(tmp_path / "p.json", 1)  # one document: never counted, never compiled


def test_auto_compile_needs_a_large_job_and_the_packed_forward():
    model = make_tiny_model()
    packed = EncodeOptions(packed=True)
    assert auto_compile(model, packed, AUTO_COMPILE_MIN_DOCS) is TRITON
    assert not auto_compile(model, packed, AUTO_COMPILE_MIN_DOCS - 1)
    assert not auto_compile(make_tiny_model("mpnet"), packed, AUTO_COMPILE_MIN_DOCS)  # keeps its bias kernel
    assert not auto_compile(model, EncodeOptions(), AUTO_COMPILE_MIN_DOCS)  # fp32 on CPU: padded forward
    assert auto_compile(model, EncodeOptions(compile=True), 1)  # asked: always
    assert not auto_compile(model, EncodeOptions(packed=True, compile=False), 10**9)


def test_embed_job_decides_once_by_the_input_size(tmp_path):
    model = make_tiny_model()
    small = _jsonl(tmp_path / "small.jsonl", 20)
    packed = EncodeOptions(packed=True)
    counted = _count_ahead(model, packed, small, None)  # on a thread, while the model moves
    assert counted is not None and counted.result() is False
    assert _job_compile(model, packed, None, counted).compile is False
    assert _count_ahead(model, packed.but(compile=True), small, None) is None  # asked for: nothing to count
    assert _job_compile(model, packed.but(compile=True), None, None).compile is True
    assert _job_compile(model, EncodeOptions(), None, counted).compile is False  # CPU fp32
    assert _count_ahead(model, packed, small, limit=5) is None
    assert _job_compile(model, packed, 5, None).compile is False
    large = Future()
    large.set_result(True)  # what the count says of a file of 2M papers or more
    assert _job_compile(model, packed, None, large).compile is bool(TRITON)


def test_small_embed_job_does_not_compile(tmp_path):
    model = make_tiny_model()
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAPERS))
    embed_file(model, path, tmp_path / "out.parquet", options=EncodeOptions(packed=True), show_progress=False)
    assert not model.compiled
