"""Reading bad input: one row per probe case (issue 12). Each row writes a file and says what a read
must give: the ids read and how many records were skipped (with ``skip_invalid``), or the error
(``file:line`` and reason) without it. A new probe case is a new row."""

from __future__ import annotations

import gzip
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sciembed.data import InputFileError, InvalidRecordError, ReadReport, as_field_list, as_paper_list, load_papers


def _lines(*records: object) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def _ten(start: int = 0) -> list[dict]:
    return [{"paper_id": f"p{i}", "title": f"title {i}"} for i in range(start, start + 10)]


def _parquet(rows: list[dict], schema: pa.Schema | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    return sink.getvalue().to_pybytes()


@dataclass(frozen=True)
class ReadCase:
    name: str
    filename: str
    content: bytes
    ids: list[str] | None = None  # ids read with skip_invalid (None: the read must fail)
    skipped: int = 0
    error: str | None = None  # the message (regex) of the error without skip_invalid
    error_line: int | None = None


TEN = [f"p{i}" for i in range(10)]
CASES = [
    ReadCase(
        "jsonl, broken first line: the other lines are still records",
        "a.jsonl",
        _lines('{"paper_id": "x", "title": ', *_ten()),
        TEN,
        1,
        "invalid JSON",
        1,
    ),
    ReadCase(
        "jsonl without a known suffix, broken first line: still JSON lines",
        "a.txt",
        _lines('{"paper_id": "x", "title": ', *_ten()),
        TEN,
        1,
        "invalid JSON",
        1,
    ),
    ReadCase(
        "JSON array, one bad element: the elements after it are kept",
        "a.json",
        (
            "[\n"
            + ",\n".join([*(json.dumps(r) for r in _ten()[:3]), '{"paper_id": "bad", "title": }'])
            + ",\n"
            + ",\n".join(json.dumps(r) for r in _ten()[3:])
            + "\n]\n"
        ).encode(),
        TEN,
        1,
        "invalid JSON",
        5,
    ),
    ReadCase(
        "JSON array, a bad element holding brackets and commas in strings",
        "a.json",
        (
            b'[{"paper_id": "p0", "title": "a"},\n{"paper_id": "q", "title": "x, ] }", oops},\n'
            b'{"paper_id": "p1", "title": "b"}]'
        ),
        ["p0", "p1"],
        1,
        "invalid JSON",
        2,
    ),
    ReadCase(
        "JSON array followed by a second array: an error, even when skipping",
        "a.json",
        (json.dumps(_ten()[:2]) + "\n" + json.dumps(_ten()[2:4])).encode(),
        None,
        error="content after the end of the JSON document",
        error_line=2,
    ),
    ReadCase(
        "JSON array followed by garbage",
        "a.json",
        (json.dumps(_ten()[:2]) + " garbage").encode(),
        None,
        error="content after the end of the JSON document",
    ),
    ReadCase(
        "JSON array that never ends",
        "a.json",
        b'[{"paper_id": "p0", "title": "a"},\n{"paper_id": "p1", "title": "b"',
        None,
        error="ends without|never ends",
    ),
    ReadCase(
        "NaN, null, empty, white space and zero-width texts are missing",
        "a.jsonl",
        _lines(
            '{"paper_id": "p0", "title": NaN, "abstract": "real"}',
            '{"paper_id": "n1", "title": NaN, "abstract": NaN}',
            {"paper_id": "n2", "title": None, "abstract": ""},
            {"paper_id": "n3", "title": "   ", "abstract": "\t\n"},
            {"paper_id": "n4", "title": "\u200b\u200b", "abstract": "\ufeff"},
            {"paper_id": "p1", "title": "kept"},
        ),
        ["p0", "p1"],
        4,
        "neither title nor abstract",
        2,
    ),
    ReadCase(
        "Parquet float NaN title and abstract",
        "a.parquet",
        _parquet(
            [
                {"paper_id": "p0", "title": "t", "abstract": float("nan")},
                {"paper_id": "n", "title": None, "abstract": float("nan")},
            ],
            pa.schema([("paper_id", pa.string()), ("title", pa.string()), ("abstract", pa.float64())]),
        ),
        ["p0"],
        1,
        "neither title nor abstract",
        2,
    ),
    ReadCase(
        "binary Parquet strings are decoded as UTF-8",
        "a.parquet",
        _parquet(
            [{"paper_id": b"p0", "title": "caf\u00e9".encode()}],
            pa.schema([("paper_id", pa.binary()), ("title", pa.binary())]),
        ),
        ["p0"],
    ),
    ReadCase(
        "binary Parquet strings that are not UTF-8: an error naming the row",
        "a.parquet",
        _parquet(
            [{"paper_id": b"p0", "title": b"ok"}, {"paper_id": b"p1", "title": b"\xff\xfe"}],
            pa.schema([("paper_id", pa.binary()), ("title", pa.binary())]),
        ),
        ["p0"],
        1,
        "'title' is binary and not valid UTF-8",
        2,
    ),
    *[
        ReadCase(
            f"an id that is a {kind}: the record is named",
            "a.jsonl",
            _lines({"paper_id": "p0", "title": "t"}, f'{{"paper_id": {value}, "title": "t"}}'),
            ["p0"],
            1,
            f"id field 'paper_id' must be a string or an integer, got {kind}",
            2,
        )
        for kind, value in (("float", "1.5"), ("bool", "true"), ("list", "[1]"), ("dict", '{"a": 1}'))
    ],
    ReadCase(
        "integer ids are fine",
        "a.jsonl",
        _lines({"paper_id": 7, "title": "t"}),
        ["7"],
    ),
    *[
        ReadCase(
            f"a title that is a {kind}: rejected, the record named",
            "a.jsonl",
            _lines({"paper_id": "p0", "title": "t"}, f'{{"paper_id": "p1", "title": {value}}}'),
            ["p0"],
            1,
            f"paper 'p1': 'title' must be a string, got {kind}",
            2,
        )
        for kind, value in (("dict", '{"en": "x"}'), ("list", '["x"]'), ("float", "1.5"), ("bool", "false"))
    ],
    ReadCase(
        "a duplicate differing only by white space is the same text",
        "a.jsonl",
        _lines(
            {"paper_id": "p0", "title": "Same title", "abstract": "text"},
            {"paper_id": "p0", "title": "Same title  ", "abstract": "text\n"},
        ),
        ["p0"],
    ),
    ReadCase(
        "a duplicate with other text is a conflict",
        "a.jsonl",
        _lines({"paper_id": "p0", "title": "one"}, {"paper_id": "p0", "title": "two"}),
        ["p0"],
        1,
        "duplicate id with different text",
        2,
    ),
    ReadCase(
        "truncated gzip: an error (records before it are not silently all there is)",
        "a.jsonl.gz",
        gzip.compress(_lines(*_ten(), *_ten(10)))[:-30],
        None,
        error="truncated or corrupt gzip",
    ),
    ReadCase(
        "corrupt gzip body",
        "a.jsonl.gz",
        b"\x1f\x8b" + os.urandom(200),
        None,
        error="truncated or corrupt gzip",
    ),
    ReadCase(
        "not Parquet at all under a .parquet name",
        "a.parquet",
        b"this is text",
        None,
        error="not a readable Parquet file",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_read_case(tmp_path: Path, case: ReadCase) -> None:
    path = tmp_path / case.filename
    path.write_bytes(case.content)
    before = path.read_bytes()
    if case.ids is not None:
        report = ReadReport()
        assert [p.paper_id for p in load_papers(path, skip_invalid=True, report=report)] == case.ids
        assert report.skipped == case.skipped, report.skipped_examples
        assert report.papers == len(case.ids)
    if case.error is None:
        assert load_papers(path)
    else:
        with pytest.raises(InvalidRecordError, match=case.error) as info:
            load_papers(path)
        assert str(info.value).startswith(str(path))
        if case.error_line is not None:
            assert info.value.line == case.error_line
        if case.ids is None:  # damage that ends the file is never skipped
            assert isinstance(info.value, InputFileError)
            with pytest.raises(InputFileError):
                load_papers(path, skip_invalid=True)
    assert path.read_bytes() == before  # reading never changes the input


def test_nan_text_is_never_embedded_as_the_word_nan(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(_lines('{"paper_id": "p0", "title": "real", "abstract": NaN}'))
    (paper,) = load_papers(path)
    assert paper.abstract is None and paper.text("[SEP]") == "real"


def test_a_directory_is_not_a_papers_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a directory"):
        load_papers(tmp_path)


def _read_through_pipe(fifo: Path, data: bytes) -> list[str]:
    """Feed ``data`` through a named pipe once; a reader that opens it twice would wait forever."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(p.paper_id for p in load_papers(fifo)), daemon=True)
    reader.start()
    with open(fifo, "wb") as handle:
        handle.write(data)
    reader.join(timeout=20)
    assert not reader.is_alive(), "the reader opened the pipe a second time"
    return got


@pytest.mark.parametrize("suffix", ["", ".jsonl"])
def test_a_pipe_is_read_once_and_nothing_is_lost(tmp_path: Path, suffix: str) -> None:
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    assert _read_through_pipe(fifo, _lines(*_ten(), *_ten(10))) == [f"p{i}" for i in range(20)]


def test_a_gzipped_pipe_is_read_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert _read_through_pipe(fifo, gzip.compress(json.dumps(_ten()).encode())) == TEN


# ---- the Python API's inputs ------------------------------------------------------------------------
def test_a_bare_string_is_one_query_and_fields_take_a_string() -> None:
    (paper,) = as_paper_list("contrastive learning for citation graphs")
    assert paper.title == "contrastive learning for citation graphs"
    assert as_field_list("title") == ("title",)
    assert as_field_list(["title", "abstract"]) == ("title", "abstract")
    with pytest.raises(ValueError, match="fields must be field names"):
        as_field_list([])


def test_a_dict_without_an_id_takes_its_position_and_a_bad_one_names_the_item() -> None:
    # SPECTER2's model card encodes {"title", "abstract"} dicts: encoding reads only the text.
    first, second = as_paper_list([{"paper_id": "a", "title": "t"}, {"title": "no id", "abstract": "x"}])
    assert (first.paper_id, second.paper_id, second.title, second.abstract) == ("a", "1", "no id", "x")
    assert "paper_id" not in second.extra
    (empty,) = as_paper_list([{"paper_id": None, "title": "an empty id is no id"}])
    assert empty.paper_id == "0"
    with pytest.raises(ValueError, match=r"item 1: id field 'id' must be a string or an integer"):
        as_paper_list([{"paper_id": "a", "title": "t"}, {"id": [1], "title": "bad id"}])
    with pytest.raises(ValueError, match=r"item 0: paper '0' has neither title nor abstract"):
        as_paper_list([{"venue": "ACL"}])


def test_encode_takes_a_bare_string_as_one_query_and_a_field_name(tiny_model) -> None:
    one = tiny_model.encode("contrastive learning for citation graphs")
    assert one.shape == (1, tiny_model.dimension)
    listed = tiny_model.encode(["contrastive learning for citation graphs"])
    assert (one == listed).all()
    papers = [{"paper_id": "a", "title": "BERT", "abstract": "a language model"}]
    by_name = tiny_model.encode(papers, fields="title")
    assert (by_name == tiny_model.encode(papers, fields=["title"])).all()
    assert not (by_name == tiny_model.encode(papers)).all()
    without_ids = [{"title": "BERT", "abstract": "a language model"}]  # SPECTER2's model-card input
    assert (tiny_model.encode(without_ids) == tiny_model.encode(papers)).all()
