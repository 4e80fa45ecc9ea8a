"""The job's loop with two encodes in flight (what it does on CUDA), run here on the CPU."""

import json
import threading

import pyarrow.parquet as pq
import pytest
from conftest import RecordingEncoder

import sciembed.embed.job as job_module
from sciembed.data import InvalidRecordError
from sciembed.embed import embed_file
from sciembed.embed.chunks import concurrent_encodes
from sciembed.embed.numerics import PROBE_PAPERS


class SimulatedCrash(Exception):
    pass


def write_papers(path, n, bad_line=None):
    with open(path, "w") as handle:
        for i in range(n):
            if i + 1 == bad_line:
                handle.write("{not json\n")
                continue
            abstract = f"word{i} " * (i % 7 + 1)
            handle.write(json.dumps({"paper_id": f"id{i}", "title": f"Paper number {i}", "abstract": abstract}) + "\n")
    return path


class Overlapping(RecordingEncoder):
    """Records how many encodes ran at the same time."""

    def __init__(self, inner, **kwargs):
        super().__init__(inner, **kwargs)
        self.lock, self.running, self.most = threading.Lock(), 0, 0
        self.first_two = threading.Barrier(2, timeout=30)

    def encode(self, papers, *args, **kwargs):
        if tuple(papers) == PROBE_PAPERS:  # the job's numerics probe, before any chunk
            return super().encode(papers, *args, **kwargs)
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            first_two = len(self.calls) < 2
        if first_two:
            self.first_two.wait()  # the first two chunks meet here: both are in flight at once
        try:
            return super().encode(papers, *args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def two_at_once(monkeypatch):
    monkeypatch.setattr(job_module, "concurrent_encodes", lambda model: 2)


def test_two_encodes_at_once_write_the_same_file(tmp_path, tiny_model, monkeypatch):
    src = write_papers(tmp_path / "p.jsonl", 95)
    clean = tmp_path / "clean.parquet"
    embed_file(tiny_model, src, clean, chunk_size=10, show_progress=False)  # one at a time (the CPU)
    monkeypatch.setattr(job_module, "concurrent_encodes", lambda model: 2)
    overlapping = Overlapping(tiny_model)
    out = tmp_path / "out.parquet"
    report = embed_file(overlapping, src, out, chunk_size=10, show_progress=False)
    assert report.rows == 95 and sorted(overlapping.calls) == sorted([10] * 9 + [5])
    assert overlapping.most == 2
    assert pq.read_table(out).equals(pq.read_table(clean))


def test_a_failed_encode_keeps_the_chunks_before_it_and_nothing_after(tmp_path, tiny_model, two_at_once):
    src = write_papers(tmp_path / "p.jsonl", 60)
    out = tmp_path / "out.parquet"
    with pytest.raises(SimulatedCrash):
        embed_file(RecordingEncoder(tiny_model, fail_on=3, error=SimulatedCrash("killed")), src, out,
                   chunk_size=10, show_progress=False)  # fmt: skip
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet"]  # chunk 2 failed; chunk 3 is not written
    report = embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    assert report.resumed_chunks == 2 and report.rows == 60


def test_a_bad_record_still_writes_every_chunk_read_before_it(tmp_path, tiny_model, two_at_once):
    src = write_papers(tmp_path / "p.jsonl", 60, bad_line=45)
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidRecordError, match=r"p\.jsonl:45: invalid JSON"):
        embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)]  # lines 1-40; the bad one is in chunk 4


def test_concurrency_is_two_on_cuda_only(tiny_model):
    assert concurrent_encodes(tiny_model) == 1  # the CPU: a second call would only share the cores

    class OnCuda:
        device = type("Device", (), {"type": "cuda"})()

    assert concurrent_encodes(OnCuda()) == 2
