"""Gzip inputs are inflated by zlib in large blocks (``readers._inflate``), not through gzip.GzipFile:
the same content, the same checks (CRC, truncation, bytes that are not a member)."""

import gzip
import io
import json
import os
import zlib

import pytest

from sciembed.data import iter_records
from sciembed.data.readers import _inflate, open_input


def _inflated(data: bytes, chunk: int, max_out: int = 1 << 26) -> bytes:
    return b"".join(block for _, block in _inflate(io.BytesIO(data), chunk, max_out=max_out))


def test_every_member_and_zero_padding_whatever_the_block_sizes():
    content = b"a" * 300_000 + os.urandom(2_000) + b"b" * 200_000
    data = gzip.compress(content) + b"\x00\x00\x00" + gzip.compress(b"tail\n")
    for chunk in (13, 4096, 1 << 20):
        for max_out in (64, 4096, 1 << 26):  # output held back by max_out is drained too
            assert _inflated(data, chunk, max_out) == content + b"tail\n"
    read = [position for position, _ in _inflate(io.BytesIO(data), 4096)]
    assert read == sorted(read) and read[-1] == len(data)  # bytes of the file read so far
    assert _inflated(b"", 10) == b""


def test_damaged_gzip_raises_what_the_readers_report():
    whole = gzip.compress(b"hello world\n" * 1000)
    with pytest.raises(EOFError, match="ended before the end-of-stream marker"):
        _inflated(whole[:-5], 1 << 20)
    bad_crc = bytearray(whole)
    bad_crc[-6] ^= 0xFF
    with pytest.raises(zlib.error, match="incorrect data check"):
        _inflated(bytes(bad_crc), 1 << 20)
    with pytest.raises(zlib.error, match="incorrect header check"):
        _inflated(whole + b"not gzip", 1 << 20)


def test_open_input_reads_a_multi_member_gzip_file_line_by_line(tmp_path):
    rows = [{"paper_id": str(i), "title": f"paper {i}"} for i in range(2_000)]
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress(text[:10_000]) + gzip.compress(text[10_000:]))  # as `cat a.gz b.gz`
    with open_input(path) as (fmt, stream):
        assert fmt == "jsonl" and stream.read() == text
    assert list(iter_records(path)) == rows
