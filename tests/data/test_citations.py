import json

import pytest
from conftest import shared_file

from sciembed.data import InvalidRecordError
from sciembed.data.citations import CitationGraph, heldout_queries, is_heldout, read_citation_graph


def test_edge_lines_with_header_spaces_and_self_citations(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("citing,cited\nA , B\nA,C\nA,A\n\n# comment\nB\tC\nA,B\n", encoding="utf-8")
    graph = read_citation_graph(path)
    assert dict(graph.cites) == {"A": {"B", "C"}, "B": {"C"}}
    assert graph.num_edges() == 3 and graph.papers() == {"A", "B", "C"}
    assert list(graph.edges()) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert graph.cited_by()["C"] == {"A", "B"}


def test_bad_edge_line_names_file_and_line(tmp_path):
    path = tmp_path / "edges.csv"
    path.write_text("A,B\nA,B,C\n", encoding="utf-8")
    with pytest.raises(InvalidRecordError, match=r"edges\.csv:2: expected 'citing,cited'"):
        read_citation_graph(path)


def test_specter_data_json_direct_only(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"q": {"a": {"count": 5}, "b": {"count": 1}}}), encoding="utf-8")
    assert dict(read_citation_graph(path).cites) == {"q": {"a"}}
    assert dict(read_citation_graph(path, direct_only=False).cites) == {"q": {"a", "b"}}


def test_s2orc_inbound_and_outbound(tmp_path):
    path = tmp_path / "metadata.jsonl"
    lines = [
        {"paper_id": "1", "outbound_citations": ["2", "3"], "inbound_citations": ["4"]},
        {"paper_id": "2", "outbound_citations": [], "inbound_citations": None},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    assert dict(read_citation_graph(path).cites) == {"1": {"2", "3"}, "4": {"1"}}


def test_heldout_is_stable_and_needs_text_and_citations():
    ids = [f"P{i}" for i in range(400)]
    drawn = [i for i in ids if is_heldout(i)]
    assert 20 < len(drawn) < 60  # about 10 percent
    assert drawn == [i for i in reversed(ids) if is_heldout(i)][::-1]
    graph = CitationGraph()
    for i, pid in enumerate(ids[:200]):
        for k in range(1, 6):
            graph.add(pid, ids[200 + (i + k) % 200])
    everyone = heldout_queries(graph, ids)
    assert everyone == sorted(p for p in ids[:200] if is_heldout(p))
    # fewer cited papers with text -> not held out; more text never shrinks the set
    fewer = heldout_queries(graph, ids[:200] + ids[200:300])
    assert set(fewer) <= set(everyone)


def test_specter_sample_and_aan_read():
    graph = read_citation_graph(shared_file("specter-sample/data.json"))
    assert len(graph.cites) == 20
    aan = read_citation_graph(shared_file("acl/aan-citations-2013.txt"))
    assert aan.num_edges() > 90_000 and len(aan.papers()) > 16_000


def test_pretty_printed_data_json_and_json_array(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"q": {"a": {"count": 5}, "b": {"count": 1}}}, indent=2), encoding="utf-8")
    assert dict(read_citation_graph(path).cites) == {"q": {"a"}}
    array = tmp_path / "edges.json"
    array.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="JSON array"):
        read_citation_graph(array)
