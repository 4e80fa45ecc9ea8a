"""The output written as the chunks finish (in order) is the file that streaming the parts at the end writes."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from sciembed.embed import ResumableParquetWriter
from sciembed.embed.writer import OutputError

JOB = {"job": "test"}
METADATA = {b"sciembed": b'{"format": "proximity"}'}


def chunks(n=3, size=7, dim=5):
    rng = np.random.default_rng(0)
    return [([f"p{i}-{j}" for j in range(size)], rng.standard_normal((size, dim), dtype=np.float32)) for i in range(n)]


def leftovers(folder, name):
    return sorted(p.name for p in folder.glob(f".{name}.*.tmp"))


def write(path, order, data, dim=5):
    writer = ResumableParquetWriter(path, JOB, METADATA)
    for index in order:
        writer.write_chunk(index, *data[index])
    assert writer.finish(len(data), dim) == sum(len(ids) for ids, _ in data)
    return path.read_bytes()


def test_in_order_output_is_the_same_bytes_as_the_parts_streamed_at_the_end(tmp_path):
    data = chunks()
    in_order = write(tmp_path / "a.parquet", [0, 1, 2], data)
    streamed_at_end = write(tmp_path / "b.parquet", [1, 0, 2], data)  # out of order: assembled from the parts
    assert in_order == streamed_at_end
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.num_rows == 21 and table.schema.metadata[b"sciembed"] == METADATA[b"sciembed"]
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == 3  # one per chunk
    assert not leftovers(tmp_path, "a.parquet") and not leftovers(tmp_path, "b.parquet")
    assert not (tmp_path / "a.parquet.parts").exists()


def test_an_unfinished_job_leaves_no_output_and_no_temporary_file(tmp_path):
    data = chunks()
    out = tmp_path / "out.parquet"
    writer = ResumableParquetWriter(out, JOB, METADATA)
    writer.write_chunk(0, *data[0])
    writer.write_chunk(1, *data[1])
    writer.close()  # the job failed after two chunks
    assert not out.exists() and not leftovers(tmp_path, "out.parquet")
    assert len(list((tmp_path / "out.parquet.parts").glob("part-*.parquet"))) == 2  # kept for the rerun
    again = ResumableParquetWriter(out, JOB, METADATA)
    assert again.resumed_chunks == 2
    again.keep_chunk(0)
    again.keep_chunk(1)
    again.write_chunk(2, *data[2])
    again.finish(3, 5)
    assert out.read_bytes() == write(tmp_path / "clean.parquet", range(3), data)


def test_a_missing_chunk_is_refused_and_leaves_nothing(tmp_path):
    data = chunks()
    out = tmp_path / "out.parquet"
    writer = ResumableParquetWriter(out, JOB, METADATA)
    writer.write_chunk(0, *data[0])
    writer.write_chunk(2, *data[2])  # chunk 1 missing: nothing is appended after chunk 0
    with pytest.raises(RuntimeError, match=r"chunks \[1\] are missing"):
        writer.finish(3, 5)
    writer.close()
    assert not out.exists() and not leftovers(tmp_path, "out.parquet")


def test_a_damaged_kept_part_is_removed_and_named(tmp_path):
    data = chunks()
    out = tmp_path / "out.parquet"
    writer = ResumableParquetWriter(out, JOB, METADATA)
    writer.write_chunk(0, *data[0])
    writer.close()
    (tmp_path / "out.parquet.parts" / "part-00000.parquet").write_bytes(b"damaged")
    again = ResumableParquetWriter(out, JOB, METADATA)
    with pytest.raises(OutputError, match=r"part-00000\.parquet: damaged"):
        again.keep_chunk(0)
    again.close()
    assert not (tmp_path / "out.parquet.parts" / "part-00000.parquet").exists()
