import gzip
import json

import pytest
from conftest import shared_file

from sciembed.data import InvalidRecordError, Paper, ReadReport
from sciembed.data.triplets import (
    Triplet,
    TripletWriter,
    count_triplets,
    read_triplets,
    triplet_from_dict,
    write_triplets,
)


def make_triplets(n=4):
    out = []
    for i in range(n):
        out.append(
            Triplet(
                query=Paper(f"q{i}", f"Query paper {i}", "An abstract with ünïcode."),
                pos=Paper(f"p{i}", f"Cited paper {i}", None),
                neg=Paper(f"n{i}", None, f"Only an abstract {i}"),
            )
        )
    return out


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_round_trip_plain_and_gzip(tmp_path, name):
    triplets = make_triplets()
    path = tmp_path / name
    assert write_triplets(iter(triplets), path) == 4
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        first = json.loads(gzip.decompress(path.read_bytes()).decode().splitlines()[0])
    else:
        first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "query": {"corpus_id": "q0", "title": "Query paper 0", "abstract": "An abstract with ünïcode."},
        "pos": {"corpus_id": "p0", "title": "Cited paper 0", "abstract": None},
        "neg": {"corpus_id": "n0", "title": None, "abstract": "Only an abstract 0"},
    }
    back = list(read_triplets(path))
    assert back == triplets
    assert count_triplets(path) == 4


def test_gzip_output_is_byte_identical_across_runs(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_triplets(make_triplets(), a)
    write_triplets(make_triplets(), b)
    assert a.read_bytes() == b.read_bytes()


def test_writer_counts_and_reading_is_lazy(tmp_path):
    path = tmp_path / "t.jsonl"
    with TripletWriter(path) as writer:
        for t in make_triplets(3):
            writer.write(t)
    assert writer.count == 3
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("{broken\n")
    stream = read_triplets(path)
    assert next(stream).query.paper_id == "q0"  # nothing past the first line has been parsed
    assert next(stream).query.paper_id == "q1"
    next(stream)
    with pytest.raises(InvalidRecordError, match=r"t\.jsonl:4: invalid JSON"):
        next(stream)


def test_errors_name_file_and_line(tmp_path):
    good = json.dumps(
        {
            "query": {"corpus_id": 1, "title": "a"},
            "pos": {"corpus_id": 2, "title": "b"},
            "neg": {"corpus_id": 3, "title": "c"},
        }
    )
    no_neg = json.dumps({"query": {"corpus_id": 1, "title": "a"}, "pos": {"corpus_id": 2, "title": "b"}})
    no_id = json.dumps(
        {
            "query": {"title": "a"},
            "pos": {"corpus_id": 2, "title": "b"},
            "neg": {"corpus_id": 3, "title": "c"},
        }
    )
    no_text = json.dumps(
        {
            "query": {"corpus_id": 1, "title": ""},
            "pos": {"corpus_id": 2, "title": "b"},
            "neg": {"corpus_id": 3, "title": "c"},
        }
    )
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([good, "", no_neg, no_id, no_text, "[1, 2]"]) + "\n", encoding="utf-8")
    with pytest.raises(InvalidRecordError, match=r"bad\.jsonl:3: missing 'neg'"):
        list(read_triplets(path))
    report = ReadReport()
    got = list(read_triplets(path, skip_invalid=True, report=report))
    assert len(got) == 1 and report.papers == 1 and report.skipped == 4
    assert report.skipped_examples[1].startswith(f"{path}:4: 'query': missing id field")
    assert report.skipped_examples[2].startswith(f"{path}:5: 'query'")
    assert "neither title nor abstract" in report.skipped_examples[2]
    assert report.skipped_examples[3].startswith(f"{path}:6: expected a JSON object")


def test_id_field_lookup_order():
    record = {
        "query": {"sha": "s1", "corpus_id": 11, "title": "a"},
        "pos": {"sha": "s2", "title": "b"},
        "neg": {"paper_id": "x", "doc_id": "d", "id": 5, "title": "c"},
    }
    t = triplet_from_dict(record)
    assert (t.query.paper_id, t.pos.paper_id, t.neg.paper_id) == ("11", "s2", "x")
    assert t.query.extra["sha"] == "s1"
    t = triplet_from_dict(
        {role: {"sha": f"s{i}", "title": "t"} for i, role in enumerate(("query", "pos", "neg"), start=1)},
        id_field="sha",
    )
    assert t.neg.paper_id == "s3"


def test_plain_text_query_is_accepted():
    t = triplet_from_dict(
        {
            "query": "graph neural networks",
            "pos": {"doc_id": 1, "title": "GNNs"},
            "neg": {"doc_id": 2, "title": "Proteins"},
        }
    )
    assert t.query.title == "graph neural networks"


def test_json_array_with_sha_only_ids(tmp_path):
    path = tmp_path / "arr.json"
    roles = ("query", "pos", "neg")
    records = [{r: {"sha": f"{r}{i}", "title": f"T {r} {i}"} for r in roles} for i in range(3)]
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    got = list(read_triplets(path))
    assert [t.pos.paper_id for t in got] == ["pos0", "pos1", "pos2"]
    assert count_triplets(path) == 3


def test_scirepeval_specter_small():
    path = shared_file("scirepeval-sample/specter_small.json")
    triplets = list(read_triplets(path))
    assert len(triplets) == 200 == count_triplets(path)
    first = triplets[0]
    assert first.query.paper_id == "12871252"  # corpus_id wins over sha
    assert first.query.extra["sha"] == "d15ca38d2fb1250222132b5bf3fed8d249bcac45"
    assert first.query.title.startswith("The Effect of Aesthetic")
    assert any(t.query.abstract is None for t in triplets)  # title-only papers are kept


def test_specter_small_survives_our_format(tmp_path):
    triplets = list(read_triplets(shared_file("scirepeval-sample/specter_small.json")))
    out = tmp_path / "specter_small.jsonl.gz"
    assert write_triplets(triplets, out) == 200
    assert list(read_triplets(out)) == triplets
