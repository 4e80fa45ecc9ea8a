"""sciembed-lite: built from ../shared/data (skipped with the reason when it is absent)."""

import csv
import json

import pytest

from sciembed.evaluate.registry import parse_task_lines, read_task_file
from sciembed.recipes.lite import build_lite, suite_task_lines


def _shared():
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is missing")
    return SHARED_DATA


def test_packaged_task_list_is_valid_and_balanced():
    tasks = parse_task_lines(suite_task_lines(), source="sciembed_lite.jsonl")
    kinds = [t.kind for t in tasks]
    for kind in ("classification", "regression", "proximity", "adhoc_search"):
        assert kinds.count(kind) >= 2, kind
    assert any(t.in_training for t in tasks) and any(not t.in_training for t in tasks)


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    root = _shared()
    out = tmp_path_factory.mktemp("lite")
    return root, out, build_lite(data_root=root, out_dir=out)


def test_lite_builds_every_task_and_is_deterministic(lite):
    root, out, task_file = lite
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failed"] == {}
    tasks = read_task_file(task_file)
    for task in tasks:
        assert task.meta.path.is_file(), task.name
        assert task.test.path.is_dir(), task.name
    # reuse: a second call does not rebuild
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert build_lite(data_root=root, out_dir=out) == task_file
    assert (out / "manifest.json").stat().st_mtime_ns == stamp


def test_aan_tasks_use_exactly_the_heldout_citing_papers(lite):
    from sciembed.data import read_papers
    from sciembed.data.citations import heldout_queries, read_citation_graph

    root, out, _ = lite
    graph = read_citation_graph(root / "acl" / "aan-citations-2013.txt")
    heldout = set(
        heldout_queries(
            graph, {p.paper_id for p in read_papers(root / "acl" / "anthology-papers.jsonl.gz", skip_invalid=True)}
        )
    )
    cite_queries = {json.loads(line)["query"]["doc_id"] for line in open(out / "aan_cite" / "meta.jsonl")}
    assert len(cite_queries) == 200 and cite_queries <= heldout
    for line in open(out / "aan_cite" / "test_qrel.jsonl"):
        row = json.loads(line)
        assert (row["cand_id"] in graph.cites[row["query_id"]]) == bool(row["score"])
    # co-citation: positives are cited by a held-out paper together with the query paper
    positives: dict[str, set[str]] = {}
    for line in open(out / "aan_cocite" / "test_qrel.jsonl"):
        row = json.loads(line)
        if row["score"]:
            positives.setdefault(row["query_id"], set()).add(row["cand_id"])
    assert len(positives) == 200
    for query, cands in positives.items():
        assert len(cands) >= 4
        assert any(query in graph.cites[h] and cands <= graph.cites[h] for h in heldout)
    # no held-out citing paper in the training split of other ACL tasks
    for name in ("aan_citation_count", "acl_year"):
        with open(out / name / "train.csv") as handle:
            assert not {r["paper_id"] for r in csv.DictReader(handle)} & heldout
