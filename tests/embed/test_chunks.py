"""The job's loop: reading ahead and writing behind keep its error behaviour."""

import json

import pytest
from conftest import RecordingEncoder

from sciembed.data import InvalidRecordError
from sciembed.embed import embed_file


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


def test_a_failed_encode_keeps_the_chunks_before_it_and_nothing_after(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 60)
    out = tmp_path / "out.parquet"
    with pytest.raises(SimulatedCrash):
        embed_file(RecordingEncoder(tiny_model, fail_on=3, error=SimulatedCrash("killed")), src, out,
                   chunk_size=10, show_progress=False)  # fmt: skip
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet"]  # chunk 1's write was in flight
    report = embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    assert report.resumed_chunks == 2 and report.rows == 60


def test_a_bad_record_still_writes_every_chunk_read_before_it(tmp_path, tiny_model):
    src = write_papers(tmp_path / "p.jsonl", 60, bad_line=45)
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidRecordError, match=r"p\.jsonl:45: invalid JSON"):
        embed_file(tiny_model, src, out, chunk_size=10, show_progress=False)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*.parquet"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)]  # lines 1-40; the bad one is in chunk 4
