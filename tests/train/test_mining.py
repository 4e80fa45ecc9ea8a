import json
import random

import pytest
from conftest import shared_file

from sciembed.data import Paper
from sciembed.data.citations import CitationGraph, heldout_queries, is_heldout, read_citation_graph
from sciembed.data.triplets import count_triplets, read_triplets
from sciembed.train.mining import (
    MiningConfig,
    MiningReport,
    is_dev_query,
    load_paper_files,
    mine_to_files,
    mine_triplets,
    paper_fields,
)


def graph_of(edges):
    graph = CitationGraph()
    for citing, cited in edges:
        graph.add(citing, cited)
    return graph


def papers_for(ids, **extra_by_id):
    return {pid: Paper(pid, f"Title of {pid}", None, extra=extra_by_id.get(pid, {})) for pid in ids}


def two_hop(graph, q):
    return {h for c in graph.cites.get(q, ()) for h in graph.cites.get(c, ())}


def random_graph(n=80, p=0.06, seed=0):
    rnd = random.Random(seed)
    ids = [f"n{i:03d}" for i in range(n)]
    edges = [(a, b) for a in ids for b in ids if a != b and rnd.random() < p]
    return ids, graph_of(edges)


# A small hand-built graph: q cites a and b; a cites h1 and b; b cites h2 and q's citer z;
# z cites q; r1..r6 form a separate chain (the only possible easy negatives besides h1/h2/z).
SMALL_EDGES = [
    ("q", "a"), ("q", "b"), ("a", "h1"), ("a", "b"), ("b", "h2"), ("b", "z"), ("z", "q"),
    ("r1", "r2"), ("r2", "r3"), ("r3", "r4"), ("r4", "r5"), ("r5", "r6"),
]  # fmt: skip
SMALL_IDS = ["q", "a", "b", "h1", "h2", "z", "r1", "r2", "r3", "r4", "r5", "r6"]


def mine(papers, graph, **kw):
    exclude = kw.pop("exclude", ())
    report = MiningReport()
    triplets = list(mine_triplets(papers, graph, MiningConfig(**kw), exclude=exclude, report=report))
    return triplets, report


def by_query(triplets, q):
    return [t for t in triplets if t.query.paper_id == q]


def test_positives_are_the_cited_papers():
    graph = graph_of(SMALL_EDGES)
    triplets, report = mine(papers_for(SMALL_IDS), graph)
    q = by_query(triplets, "q")
    assert len(q) == 5
    assert {t.pos.paper_id for t in q} == {"a", "b"}  # both used: positives are cycled after a shuffle
    for t in triplets:
        assert t.pos.paper_id in graph.cites[t.query.paper_id]
    assert report.triplets == len(triplets) == 5 * report.queries_used


def test_hard_negatives_are_citations_of_citations_never_cited_by_the_query():
    graph = graph_of(SMALL_EDGES)
    triplets, report = mine(papers_for(SMALL_IDS), graph, triplets_per_query=2, hard_per_query=2)
    q = by_query(triplets, "q")
    # two-hop from q: h1, b (cited by q -> no), h2, z (cites q -> no)
    assert {t.neg.paper_id for t in q} == {"h1", "h2"}
    assert report.hard_negatives >= 2


def test_hard_negatives_by_construction_on_a_random_graph():
    ids, graph = random_graph(seed=3)
    inbound = graph.cited_by()
    triplets, report = mine(papers_for(ids), graph, triplets_per_query=3, hard_per_query=3)
    assert report.hard_negatives > 0
    for q in {t.query.paper_id for t in triplets}:
        hard = two_hop(graph, q) - graph.cites[q] - inbound.get(q, set()) - {q}
        negs = [t.neg.paper_id for t in by_query(triplets, q)]
        n_hard = sum(n in hard for n in negs)
        assert n_hard == min(3, len(hard))  # every hard slot that can be filled is hard
        for n in negs:
            assert n not in graph.cites[q] and n != q


def test_easy_negatives_never_cited_by_or_citing_the_query():
    ids, graph = random_graph(seed=5)
    inbound = graph.cited_by()
    triplets, report = mine(papers_for(ids), graph, triplets_per_query=4, hard_per_query=0)
    assert report.hard_negatives == 0 and report.easy_negatives == len(triplets) > 0
    for t in triplets:
        q = t.query.paper_id
        assert t.neg.paper_id not in graph.cites[q]
        assert t.neg.paper_id not in inbound.get(q, set())
        assert t.neg.paper_id != q


def test_no_paper_in_two_roles_and_negatives_distinct_per_query():
    ids, graph = random_graph(n=60, p=0.1, seed=7)
    triplets, _ = mine(papers_for(ids), graph)
    assert triplets
    for t in triplets:
        assert len({t.query.paper_id, t.pos.paper_id, t.neg.paper_id}) == 3
    for q in {t.query.paper_id for t in triplets}:
        negs = [t.neg.paper_id for t in by_query(triplets, q)]
        assert len(negs) == len(set(negs))


def test_missing_hard_negatives_are_filled_with_easy_ones():
    # q cites a; a cites nothing: no hard negative exists.
    graph = graph_of([("q", "a"), ("r1", "r2"), ("r2", "r3"), ("r3", "r4"), ("r4", "r5"), ("r5", "r6")])
    triplets, report = mine(papers_for(["q", "a", "r1", "r2", "r3", "r4", "r5", "r6"]), graph)
    q = by_query(triplets, "q")
    assert len(q) == 5
    assert {t.neg.paper_id for t in q} <= {"r1", "r2", "r3", "r4", "r5", "r6"}
    assert report.hard_filled_with_easy >= 2


def test_exclusion_in_every_role_and_their_edges_dropped():
    # q cites a and e; e cites h: with e excluded, h is not a hard negative of q (that edge is e's).
    edges = [("q", "a"), ("q", "e"), ("e", "h"), ("e", "a"), ("a", "x"), ("r1", "r2"), ("r2", "e"), ("r3", "r4")]
    ids = ["q", "a", "e", "h", "x", "r1", "r2", "r3", "r4"]
    graph = graph_of(edges)
    triplets, report = mine(papers_for(ids), graph, exclude={"e"}, triplets_per_query=3, hard_per_query=3)
    assert triplets
    for t in triplets:
        assert "e" not in (t.query.paper_id, t.pos.paper_id, t.neg.paper_id)
    q = by_query(triplets, "q")
    assert {t.pos.paper_id for t in q} == {"a"}
    assert [t.neg.paper_id for t in q][0] == "x"  # the only hard negative left
    assert report.queries_excluded == 1 and report.edges_dropped_excluded == 4


def heldout_fixture(n=300):
    """A graph in which some citing papers are held-out evaluation queries (>= 5 citations, hash draw)."""
    ids = [f"W{i:04d}" for i in range(n)]
    rnd = random.Random(1)
    edges = []
    for i, pid in enumerate(ids[:150]):
        for j in rnd.sample(range(150, n), 6):
            edges.append((pid, ids[j]))
        edges.append((ids[150 + i], ids[150 + (i + 1) % 150]))
    return ids, graph_of(edges)


def write_papers(path, papers):
    path.write_text("\n".join(json.dumps(p) for p in papers) + "\n", encoding="utf-8")
    return path


def write_edges(path, graph):
    path.write_text("citing,cited\n" + "".join(f"{a},{b}\n" for a, b in graph.edges()), encoding="utf-8")
    return path


def test_mine_to_files_excludes_heldout_queries_everywhere(tmp_path):
    ids, graph = heldout_fixture()
    heldout = set(heldout_queries(graph, ids))
    assert heldout and all(is_heldout(h) for h in heldout)
    papers = write_papers(tmp_path / "papers.jsonl", [{"paper_id": i, "title": f"Paper {i}"} for i in ids])
    edges = write_edges(tmp_path / "edges.csv", graph)

    report = mine_to_files(papers, edges, tmp_path / "out", progress=False)
    assert report.heldout_excluded == len(heldout)
    seen = set()
    for name in ("train.jsonl", "dev.jsonl"):
        for t in read_triplets(tmp_path / "out" / name):
            seen |= {t.query.paper_id, t.pos.paper_id, t.neg.paper_id}
    assert seen and not seen & heldout
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["heldout_excluded"] == len(heldout) and saved["triplets"] == report.triplets

    report = mine_to_files(papers, edges, tmp_path / "all", exclude_heldout=False, progress=False)
    assert report.heldout_excluded == 0
    queries = {t.query.paper_id for t in read_triplets(tmp_path / "all" / "train.jsonl")}
    queries |= {t.query.paper_id for t in read_triplets(tmp_path / "all" / "dev.jsonl")}
    assert heldout <= queries


def test_dev_split_is_stable_and_disjoint(tmp_path):
    ids, graph = heldout_fixture()
    papers = write_papers(tmp_path / "papers.jsonl", [{"paper_id": i, "title": f"Paper {i}"} for i in ids])
    edges = write_edges(tmp_path / "edges.csv", graph)
    config = MiningConfig(dev_fraction=0.2)
    report = mine_to_files(papers, edges, tmp_path / "out", config, progress=False, compress=True)
    train = {t.query.paper_id for t in read_triplets(tmp_path / "out" / "train.jsonl.gz")}
    dev = {t.query.paper_id for t in read_triplets(tmp_path / "out" / "dev.jsonl.gz")}
    assert train and dev and not train & dev
    assert all(is_dev_query(q, 0.2) for q in dev) and not any(is_dev_query(q, 0.2) for q in train)
    assert count_triplets(tmp_path / "out" / "dev.jsonl.gz") == report.dev_triplets
    assert report.dev_queries == len(dev) and report.train_queries == len(train)
    share = sum(is_dev_query(f"id{i}", 0.05) for i in range(20000)) / 20000
    assert 0.04 < share < 0.06
    assert not any(is_dev_query(f"id{i}", 0.0) for i in range(100))


def test_deterministic_by_seed_whatever_the_dict_order():
    ids, graph = random_graph(seed=11)
    papers = papers_for(ids)
    first, _ = mine(papers, graph, seed=42)
    again, _ = mine(papers, graph, seed=42)
    assert first == again
    # shuffled insertion order of the papers and of the graph
    rnd = random.Random(0)
    shuffled_ids = ids[:]
    rnd.shuffle(shuffled_ids)
    edges = list(graph.edges())
    rnd.shuffle(edges)
    shuffled, _ = mine({i: papers[i] for i in shuffled_ids}, graph_of(edges), seed=42)
    assert shuffled == first
    other, _ = mine(papers, graph, seed=43)
    assert other != first


def test_a_query_triplets_do_not_depend_on_other_queries():
    ids, graph = random_graph(seed=13)
    full, _ = mine(papers_for(ids), graph)
    q = full[0].query.paper_id
    # drop another citing paper that is not linked to q
    other = next(c for c in sorted(graph.cites) if c != q and c not in graph.cites[q])
    reduced = CitationGraph()
    for a, b in graph.edges():
        if a != other:
            reduced.add(a, b)
    part, _ = mine(papers_for(ids), reduced, easy_pool="papers")
    full_p, _ = mine(papers_for(ids), graph, easy_pool="papers")
    assert by_query(part, q) == by_query(full_p, q)


def test_no_text_papers_are_skipped_and_counted(tmp_path):
    # 'nt' has no text, 'gone' is not in the papers at all.
    graph = graph_of([("q", "a"), ("q", "nt"), ("q", "gone"), ("nt", "a"), ("gone", "a"), ("b", "nt"),
                      ("r1", "r2"), ("r2", "r3"), ("r3", "r4"), ("r4", "r5"), ("r5", "r6")])  # fmt: skip
    records = [{"paper_id": i, "title": f"T {i}"} for i in ["q", "a", "b", "r1", "r2", "r3", "r4", "r5", "r6"]]
    records.append({"paper_id": "nt", "title": "  ", "abstract": None})
    path = write_papers(tmp_path / "p.jsonl", records)
    report = MiningReport()
    papers = load_paper_files([path], report=report)
    assert "nt" not in papers and report.papers_no_text == 1 and report.papers_read == 9
    triplets = list(mine_triplets(papers, graph, MiningConfig(), report=report))
    used = {x for t in triplets for x in (t.query.paper_id, t.pos.paper_id, t.neg.paper_id)}
    assert not used & {"nt", "gone"}
    assert report.queries_skipped_no_text == 2  # nt and gone cite, but have no text
    assert report.queries_skipped_no_positives == 1  # b cites only nt
    assert report.cited_without_text == 3  # q -> nt, q -> gone, b -> nt


def test_field_aware_easy_negatives_by_construction():
    bio = {"fields_of_study": ["Biology"]}
    papers = papers_for(
        ["q", "a"] + [f"s{i}" for i in range(5)] + [f"o{i}" for i in range(5)] + [f"n{i}" for i in range(5)],
        q=bio,
        a=bio,
        **{f"s{i}": bio for i in range(5)},
        **{f"o{i}": {"fields_of_study": ["Biology", "Medicine"]} for i in range(5)},
        **{f"n{i}": {"mag_field_of_study": ["Physics"]} for i in range(5)},
    )
    graph = graph_of([("q", "a")])
    triplets, report = mine(papers, graph, triplets_per_query=3, hard_per_query=0, easy_pool="papers")
    kinds = []
    for t in triplets:
        f = paper_fields(t.neg)
        kinds.append("none" if not f & {"Biology"} else "same" if f == {"Biology"} else "shared")
    assert kinds == ["none", "shared", "same"]  # SPECTER2's three kinds, in turn
    assert report.easy_kinds == {"no_shared_field": 1, "shared_field": 1, "same_fields": 1}
    assert report.easy_kind_fallbacks == 0

    # no paper with the same fields besides a (cited): the 'same' slot falls back and is counted
    for i in range(5):
        papers.pop(f"s{i}")
    triplets, report = mine(papers, graph, triplets_per_query=3, hard_per_query=0, easy_pool="papers")
    assert len(triplets) == 3 and report.easy_kind_fallbacks == 1


def test_without_fields_easy_negatives_are_random():
    ids, graph = random_graph(seed=2)
    _, report = mine(papers_for(ids), graph)
    assert set(report.easy_kinds) == {"random"}


def test_paper_fields_formats():
    assert paper_fields(Paper("x", "t", extra={"categories": "cs.CL cs.LG"})) == {"cs.CL", "cs.LG"}
    assert paper_fields(Paper("x", "t", extra={"categories": ["cs.CL"]})) == {"cs.CL"}
    s2 = {"s2_fields_of_study": [{"category": "Biology", "source": "s2"}]}
    assert paper_fields(Paper("x", "t", extra=s2)) == {"Biology"}
    assert paper_fields(Paper("x", "t", extra={"mag_field_of_study": None})) == frozenset()


def test_citing_papers_as_positives_and_positive_cap():
    graph = graph_of(SMALL_EDGES)
    triplets, _ = mine(papers_for(SMALL_IDS), graph, include_citing_as_positive=True)
    assert {t.pos.paper_id for t in by_query(triplets, "q")} == {"a", "b", "z"}
    many = graph_of([("q", f"c{i}") for i in range(10)] + [(f"r{i}", f"r{i + 1}") for i in range(10)])
    ids = ["q"] + [f"c{i}" for i in range(10)] + [f"r{i}" for i in range(11)]
    triplets, _ = mine(papers_for(ids), many, max_positives_per_query=2)
    assert len({t.pos.paper_id for t in by_query(triplets, "q")}) == 2


def test_config_validation():
    assert MiningConfig().easy_per_query == 3
    assert MiningConfig(triplets_per_query=4, hard_per_query=1).easy_per_query == 3
    with pytest.raises(ValueError, match="must equal"):
        MiningConfig(hard_per_query=2, easy_per_query=2)
    with pytest.raises(ValueError, match="hard_per_query"):
        MiningConfig(triplets_per_query=2, hard_per_query=3)
    with pytest.raises(ValueError, match="easy_pool"):
        MiningConfig(easy_pool="everything")


def test_several_papers_files_merge_abstracts(tmp_path):
    first = write_papers(tmp_path / "a.jsonl", [
        {"paper_id": "P1", "title": "One", "abstract": None, "year": 2001},
        {"paper_id": "P2", "title": "Two", "abstract": "Kept abstract."},
    ])  # fmt: skip
    second = write_papers(tmp_path / "b.jsonl", [
        {"acl_id": "P1", "title": "One (other title)", "abstract": "Merged abstract.", "cited_by": 3},
        {"acl_id": "P2", "title": "Two", "abstract": "Ignored abstract."},
        {"acl_id": "P3", "title": "Three", "abstract": ""},
    ])  # fmt: skip
    report = MiningReport()
    papers = load_paper_files([first, second], report=report)
    assert papers["P1"].title == "One" and papers["P1"].abstract == "Merged abstract."
    assert papers["P1"].extra == {"year": 2001, "cited_by": 3}
    assert papers["P2"].abstract == "Kept abstract."
    assert papers["P3"].title == "Three"
    assert report.abstracts_merged == 1 and report.papers_read == 3


def test_bad_papers_file_names_file_and_line(tmp_path):
    from sciembed.data import InvalidRecordError

    path = tmp_path / "p.jsonl"
    path.write_text('{"paper_id": "a", "title": "A"}\n{"title": "no id"}\n', encoding="utf-8")
    with pytest.raises(InvalidRecordError, match=r"p\.jsonl:2: missing id field"):
        load_paper_files([path])
    report = MiningReport()
    assert list(load_paper_files([path], skip_invalid=True, report=report)) == ["a"]
    assert report.papers_invalid == 1


def test_cli_mine_triplets(tmp_path):
    from typer.testing import CliRunner

    from sciembed.cli import app

    ids, graph = heldout_fixture()
    papers = write_papers(tmp_path / "papers.jsonl", [{"paper_id": i, "title": f"Paper {i}"} for i in ids])
    edges = write_edges(tmp_path / "edges.txt", graph)
    out = tmp_path / "out"
    args = ["mine-triplets", "--papers", str(papers), "--edges", str(edges), "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--per-query", "4", "--hard", "1", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "held-out evaluation queries" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["triplets_per_query"] == 4 and report["config"]["seed"] == 7
    assert report["heldout_excluded"] > 0
    assert count_triplets(out / "train.jsonl") + count_triplets(out / "dev.jsonl") == report["triplets"]
    result = CliRunner().invoke(app, [*args, "--no-exclude-heldout", "--hard", "9"])
    assert result.exit_code == 2 and "hard_per_query" in result.output


@pytest.mark.integration
def test_full_acl_graph_excludes_heldout_papers(tmp_path):
    anthology = shared_file("acl/anthology-papers.jsonl.gz")
    scisumm = shared_file("acl/scisummnet-papers.jsonl")
    edges = shared_file("acl/aan-citations-2013.txt")
    report = mine_to_files([anthology, scisumm], edges, tmp_path, progress=False)
    # what the evaluation holds out, computed from the anthology alone
    from sciembed.data import read_papers

    with_text = [p.paper_id for p in read_papers(anthology, skip_invalid=True)]
    heldout = set(heldout_queries(read_citation_graph(edges), with_text))
    assert len(heldout) > 500 and report.heldout_excluded >= len(heldout)
    seen = set()
    for name in ("train.jsonl", "dev.jsonl"):
        for t in read_triplets(tmp_path / name):
            seen.update((t.query.paper_id, t.pos.paper_id, t.neg.paper_id))
    assert not seen & heldout
    assert report.queries_used > 13000 and report.triplets == 5 * report.queries_used
    assert report.abstracts_merged > 500
    assert report.train_triplets + report.dev_triplets == report.triplets
    assert 0.03 < report.dev_queries / report.queries_used < 0.07
    assert report.seconds > 0  # recorded; its speed is benchmarks/mine_acl.py's job, not a timed test


def test_specter_data_json_count_one_entries_are_hard_negatives(tmp_path):
    data = {"q": {"a": {"count": 5}, "b": {"count": 5}, "h": {"count": 1}, "a2": {"count": 1}}}
    edges = tmp_path / "data.json"
    edges.write_text(json.dumps(data, indent=2), encoding="utf-8")
    ids = ["q", "a", "b", "h", "a2", "r1", "r2", "r3"]
    papers = write_papers(tmp_path / "metadata.jsonl", [{"paper_id": i, "title": f"T {i}"} for i in ids])
    config = MiningConfig(triplets_per_query=2, hard_per_query=2, dev_fraction=0.0)
    report = mine_to_files(papers, edges, tmp_path / "out", config, exclude_heldout=False, progress=False)
    negs = {t.neg.paper_id for t in read_triplets(tmp_path / "out" / "train.jsonl")}
    assert negs == {"h", "a2"} and report.hard_negatives == 2
    assert {t.pos.paper_id for t in read_triplets(tmp_path / "out" / "train.jsonl")} <= {"a", "b"}
