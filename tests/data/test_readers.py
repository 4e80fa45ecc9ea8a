import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_file

from sciembed.data import InvalidRecordError, Paper, ReadReport, load_papers, read_papers


def write_lines(path, lines, gz=False):
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_jsonl_gzip_array_and_parquet_read_the_same(tmp_path, papers):
    lines = [json.dumps(p) for p in papers]
    jsonl = write_lines(tmp_path / "a.jsonl", lines)
    gz = write_lines(tmp_path / "a.jsonl.gz", lines, gz=True)
    array = tmp_path / "a.json"
    array.write_text(json.dumps(papers, indent=1))
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(papers), parquet)
    expected = [p["paper_id"] for p in papers]
    for path in (jsonl, gz, array, parquet):
        got = load_papers(path)
        assert [p.paper_id for p in got] == expected, path
        assert got[0].title == "Attention is all you need"
        assert got[1].abstract is None


def test_id_field_candidates_custom_field_and_extra_fields_kept(tmp_path):
    path = write_lines(
        tmp_path / "x.jsonl",
        [
            json.dumps({"corpus_id": 7, "title": "T", "venue": "ACL", "labels": [1, 2]}),
            json.dumps({"doc_id": "d", "title": "U"}),
            json.dumps({"id": "2503.1", "title": "V"}),
        ],
    )
    got = load_papers(path)
    assert [p.paper_id for p in got] == ["7", "d", "2503.1"]
    assert got[0].extra == {"venue": "ACL", "labels": [1, 2]}
    custom = write_lines(tmp_path / "acl.jsonl", [json.dumps({"acl_id": "P05-1013", "id": "other", "title": "T"})])
    assert load_papers(custom, id_field="acl_id")[0].paper_id == "P05-1013"


def test_text_joins_non_empty_fields_with_separator_and_normalises_space():
    paper = Paper("1", title="A  title\n", abstract="Line one\nline two")
    assert paper.text("[SEP]") == "A title [SEP] Line one line two"
    assert Paper("2", title=None, abstract="only abstract").text("</s>") == "only abstract"
    assert (
        Paper("3", title="T", abstract="", extra={"venue": "ACL", "year": 2020}).text(
            "[SEP]", ("title", "abstract", "venue", "year")
        )
        == "T [SEP] ACL [SEP] 2020"
    )


@pytest.mark.parametrize(
    ("lines", "bad_line", "reason"),
    [
        (['{"paper_id": "a", "title": "ok"}', '{"paper_id": "b", "title": '], 2, "invalid JSON"),
        (['{"paper_id": "a", "title": "ok"}', '{"title": "no id"}'], 2, "missing id field"),
        (
            ['{"paper_id": "a", "title": "ok"}', '{"paper_id": "b", "title": "", "abstract": null}'],
            2,
            "neither title nor abstract",
        ),
        (
            [
                '{"paper_id": "a", "title": "ok"}',
                '{"paper_id": "z", "title": "x"}',
                '{"paper_id": "a", "title": "other"}',
            ],
            3,
            "duplicate id with different text (first seen on line 1)",
        ),
        (['{"paper_id": "a", "title": "ok"}', "[1, 2]"], 2, "expected a JSON object"),
    ],
)
def test_bad_records_name_file_and_line(tmp_path, lines, bad_line, reason):
    path = write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InvalidRecordError) as info:
        load_papers(path)
    assert info.value.line == bad_line
    assert f"{path}:{bad_line}" in str(info.value)
    assert reason in str(info.value)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"paper_id": "a", "title": "ok"}\n{"paper_id": "b", "title": "caf\xe9"}\n')
    with pytest.raises(InvalidRecordError, match=r"bad.jsonl:2: invalid UTF-8"):
        load_papers(path)


def test_duplicate_with_same_text_is_dropped_and_counted(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", ['{"paper_id": "a", "title": "t"}'] * 3)
    report = ReadReport()
    assert len(load_papers(path, report=report)) == 1
    assert report.duplicates == 2


def test_skip_invalid_skips_counts_and_names_locations(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'{"paper_id": "a", "title": "ok"}\n'
        b"not json\n"
        b'{"paper_id": "b", "title": "caf\xe9"}\n'
        b'{"title": "no id"}\n'
        b'{"paper_id": "c", "title": "fine"}\n'
    )
    report = ReadReport()
    got = load_papers(path, skip_invalid=True, report=report)
    assert [p.paper_id for p in got] == ["a", "c"]
    assert report.skipped == 3 and report.papers == 2
    assert [e.split(": ")[0] for e in report.skipped_examples] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "3 invalid records skipped" in report.summary()


def test_json_array_errors_name_the_line(tmp_path):
    path = tmp_path / "arr.json"
    path.write_text('[\n {"paper_id": "a", "title": "t"},\n {"paper_id": "b"}\n]\n')
    with pytest.raises(InvalidRecordError, match=r"arr.json:3: paper 'b' has neither title nor abstract"):
        load_papers(path)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"paper_id": "a", "title": "t"},\n {"paper_id": "b", "title": }\n]\n')
    with pytest.raises(InvalidRecordError, match=r"broken.json:3: invalid JSON"):
        load_papers(broken)


def test_json_object_of_records_uses_keys_as_ids(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"abc": {"title": "T", "abstract": "A"}, "def": {"title": "U"}}, indent=2))
    assert [p.paper_id for p in load_papers(path)] == ["abc", "def"]


def test_parquet_missing_title_and_abstract_names_row(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"paper_id": "a", "title": "t"}, {"paper_id": "b", "title": None}]), path)
    with pytest.raises(InvalidRecordError, match=r"p.parquet:2"):
        load_papers(path)


def test_reader_streams(tmp_path):
    path = write_lines(
        tmp_path / "s.jsonl", [json.dumps({"paper_id": str(i), "title": "t"}) for i in range(5)] + ["{bad"]
    )
    stream = read_papers(path)
    assert next(stream).paper_id == "0"  # the bad last line has not been read yet


def test_real_shared_files_of_each_format():
    fos = load_papers(shared_file("scirepeval-sample/fos_small.json"))
    assert len(fos) == 205 and fos[0].paper_id == "121676082" and fos[0].extra["labels_text"] == ["Mathematics"]
    acl = load_papers(shared_file("acl/scisummnet-papers.jsonl"), id_field="acl_id")
    assert len(acl) == 978 and acl[0].paper_id == "A00-1031"
    specter = load_papers(shared_file("specter-sample/metadata.json"))
    assert len(specter) > 0 and all(p.has_text() for p in specter)
