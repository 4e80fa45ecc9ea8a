"""The sciembed-lite recipe on a synthetic data tree: every task builds, marks follow the sources,
the built folder runs on its own, and no evaluation document of an in-training source reaches training."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
import yaml
from synthetic_tree import SHARED_TITLE, make_data_tree

from sciembed.data.citations import heldout_queries, read_citation_graph
from sciembed.evaluate import load_tasks
from sciembed.evaluate.benchmark import DataMemo, load_task_data
from sciembed.recipes import TRAINING_SOURCES, excluded_ids
from sciembed.recipes.heldout import task_document_ids, training_leaks
from sciembed.recipes.lite import build_lite, packaged_task_lines
from sciembed.recipes.lite_intraining import GraphTaskSizes


def read_triplet_ids(row: dict) -> set[str]:
    return {str(row[role]["corpus_id"]) for role in ("query", "pos", "neg")}


@pytest.fixture(scope="session")
def data_tree(tmp_path_factory):
    return make_data_tree(tmp_path_factory.mktemp("shared") / "data")


@pytest.fixture(scope="session")
def built_suite(data_tree, tmp_path_factory):
    """The suite built from the synthetic tree (fewer AAN / Paperscape queries: the graphs are small)."""
    from sciembed.recipes.lite import build_lite

    return build_lite(data_root=data_tree, out_dir=tmp_path_factory.mktemp("suite") / "sciembed-lite", sizes=SMALL)


# so that the small synthetic graphs keep papers for training
SMALL = GraphTaskSizes(
    aan_queries=7,
    physics_queries=10,
    aan_negative_pool=60,
    aan_count_papers=40,
    acl_year_papers=40,
    physics_negative_pool=60,
    ohsumed_train=20,
    ohsumed_test=20,
)

IN_TRAINING = {
    "arXiv primary category",
    "arXiv categories",
    "ACL publication year",
    "AAN citation count",
    "AAN citation prediction",
    "AAN co-citation",
    "SciTLDR",
    "Paperscape citation prediction",
    "OHSUMED disease category",  # mixture v4 trains on the other OHSUMED papers
}


def _task_docs(task, memo) -> dict[str, object]:
    data = load_task_data(task, memo)
    docs = dict(data.docs.docs)
    if data.labels is not None:
        ids = {pid for rows in data.labels.values() for pid, _ in rows}
        return {pid: docs[pid] for pid in ids}
    ids = set(data.qrels) | {c for cands in data.qrels.values() for c in cands}
    return {pid: docs[pid] for pid in ids if pid in docs}


def test_every_task_builds_and_the_build_is_reused(built_suite, data_tree):
    manifest = json.loads((built_suite.parent / "manifest.json").read_text())
    assert manifest["failed"] == {}
    tasks = load_tasks(built_suite)
    assert len(tasks) == len(packaged_task_lines())
    memo = DataMemo()
    for task in tasks:
        assert _task_docs(task, memo), task.name  # every task has items
    stamp = (built_suite.parent / "manifest.json").stat().st_mtime_ns
    assert build_lite(data_root=data_tree, out_dir=built_suite.parent) == built_suite
    assert build_lite(data_root=data_tree, out_dir=built_suite.parent, sizes=SMALL) == built_suite
    assert (built_suite.parent / "manifest.json").stat().st_mtime_ns == stamp
    assert manifest["sizes"]["aan_queries"] == SMALL.aan_queries


def test_marks_follow_the_sources(built_suite):
    for line in packaged_task_lines():
        assert "in_training" not in json.loads(line)  # marks come from the sources only
    tasks = load_tasks(built_suite)
    for task in tasks:
        assert task.sources, task.name
        assert task.in_training == bool(set(task.sources) & TRAINING_SOURCES), task.name
    assert {t.name for t in tasks if t.in_training} == IN_TRAINING
    outside = [t for t in tasks if not t.in_training]
    formats = {t.type for t in outside}
    assert formats == {"classification", "regression", "proximity", "adhoc_search"}
    assert all(t.cv_seeds >= 3 for t in tasks if t.type in ("classification", "regression"))
    # suite v6: the supervised tasks without a given split score every paper (3 folds where the
    # split was two thirds / one third, 2 where it was half / half: the same training share)
    folds = {t.name: t.cross_fit for t in tasks if t.cross_fit}
    assert folds == {
        "arXiv categories": 3,
        "ACL publication year": 3,
        "AAN citation count": 3,
        "Fields of study (fos_small)": 3,
        "MeSH (mesh_small)": 3,
        "ICLR 2021 review score": 2,
        "S2ORC field of study": 2,
        "S2ORC publication year": 2,
        "S2ORC citation count": 2,
    }


def test_out_of_training_tasks_hold_no_paper_of_a_training_source(built_suite):
    memo = DataMemo()
    for task in load_tasks(built_suite):
        titles = {getattr(p, "title", None) for p in _task_docs(task, memo).values()}
        if not task.in_training:
            assert SHARED_TITLE not in titles, task.name


def test_excluded_ids_cover_every_in_training_document_and_heldout_paper(built_suite, data_tree):
    excluded = excluded_ids(data_tree, built_suite.parent)
    assert set(excluded) == {"acl", "arxiv", "paperscape", "scitldr", "ohsumed"}
    memo = DataMemo()
    for task in load_tasks(built_suite):
        if task.in_training:
            (source,) = task.sources
            ids = set(_task_docs(task, memo)) - {q for q in load_task_data(task, memo).docs.queries}
            assert ids and ids <= excluded[source], task.name
    for source, graph_file, papers_file in (
        ("acl", "acl/aan-citations-2013.txt", "acl/anthology-papers.jsonl.gz"),
        ("paperscape", "paperscape/citations-1991-1996.txt", "paperscape/papers-1991-1996.jsonl.gz"),
    ):
        with gzip.open(data_tree / papers_file, "rt") as handle:
            ids = [json.loads(line)["paper_id"] for line in handle]
        held = heldout_queries(read_citation_graph(data_tree / graph_file), ids)
        assert held and set(held) <= excluded[source]
    # the out-of-training documents are not in the exclusions (they may be used ... by nobody)
    outside = task_document_ids(built_suite, in_training=False)
    assert set(outside) & TRAINING_SOURCES == set()


def test_mined_triplets_never_contain_an_excluded_paper(built_suite, data_tree, tmp_path):
    """A synthetic stage-1 mixture: triplets mined from the AAN and Paperscape graphs with the exclusions."""
    from sciembed.train.mining import MiningConfig, mine_to_files

    excluded = excluded_ids(data_tree, built_suite.parent)
    used: dict[str, set[str]] = {}
    for source, graph_file, papers_file in (
        ("acl", "acl/aan-citations-2013.txt", "acl/anthology-papers.jsonl.gz"),
        ("paperscape", "paperscape/citations-1991-1996.txt", "paperscape/papers-1991-1996.jsonl.gz"),
    ):
        out = tmp_path / source
        report = mine_to_files(
            data_tree / papers_file,
            data_tree / graph_file,
            out,
            MiningConfig(triplets_per_query=2, hard_per_query=1),
            exclude=excluded[source],
            progress=False,
        )
        assert report.train_triplets + report.dev_triplets > 0
        for split in ("train", "dev"):
            for line in open(out / f"{split}.jsonl"):
                row = json.loads(line)
                used.setdefault(source, set()).update(read_triplet_ids(row))
    assert training_leaks(used, excluded) == {}
    # the guard itself: a mixture with a held-out paper is flagged, by source
    leaked = next(iter(excluded["paperscape"]))
    assert training_leaks({"paperscape": {leaked, "x"}, "acl": set()}, excluded) == {"paperscape": [leaked]}


def test_the_stage2_mixture_holds_no_evaluation_document(built_suite, data_tree, tmp_path):
    """Mixture v3 on the synthetic tree: no paper of ``excluded_ids`` in any task or role, which is
    stricter than the suite's test items: the candidates of the in-training ranking tasks stay out too."""
    from sciembed.train.multitask.mixture import _Mixture, build_mixture, mixture_source_ids

    excluded = excluded_ids(data_tree, built_suite.parent)
    out = tmp_path / "mixture"
    report = build_mixture(data_tree, out, lite_dir=built_suite.parent, log=None)
    used = mixture_source_ids(out)
    assert set(used) == {"acl", "paperscape", "scitldr", "ohsumed"}  # no keyphrase, ICLR, S2ORC ...
    # the suite uses all 60 synthetic arXiv papers, so no arXiv task keeps an example (nor is trained)
    assert all(report["tasks"][t]["examples"] == 0 for t in ("arxiv_primary", "arxiv_categories"))
    generated = yaml.safe_load((out / "stage2.yaml").read_text())
    assert {t["name"] for t in generated["tasks"]} == {n for n, i in report["tasks"].items() if i["examples"]}
    assert training_leaks(used, excluded) == {}
    memo = DataMemo()
    for task in load_tasks(built_suite):
        if task.in_training and task.type in ("proximity", "adhoc_search"):
            data = load_task_data(task, memo)
            candidates = {c for cands in data.qrels.values() for c in cands} - set(data.qrels)
            (source,) = task.sources
            assert candidates and candidates <= excluded[source] and not candidates & used[source], task.name
    # every task's rows name only papers of the table; a citation count never comes from an excluded paper
    with gzip.open(out / "papers.jsonl.gz", "rt") as handle:
        known = {json.loads(line)["paper_id"] for line in handle}
    for name, info in report["tasks"].items():
        with gzip.open(out / f"{name}.jsonl.gz", "rt") as handle:
            rows = [json.loads(line) for line in handle]
        assert len(rows) == info["examples"], name
        for row in rows:
            assert {row[r] for r in ("paper", "pos", "neg") if r in row} <= known, name
    assert report["tasks"]["acl_citation_triplets"]["examples"] > 0
    assert report["tasks"]["paperscape_triplets"]["examples"] > 0
    # OHSUMED: the papers the suite leaves, and never a twin (same title, other id) of a suite paper
    assert report["tasks"]["ohsumed_category"]["examples"] > 0
    assert report["tasks"]["ohsumed_title_search"]["examples"] > 0
    with gzip.open(data_tree / "ohsumed" / "ohsumed-23.jsonl.gz", "rt") as handle:
        medline = [json.loads(line) for line in handle]
    by_title: dict[str, set[str]] = {}
    for rec in medline:
        by_title.setdefault(rec["title"], set()).add(rec["doc_id"])
    twins_held = [ids for ids in by_title.values() if len(ids) > 1 and ids & excluded["ohsumed"]]
    assert twins_held  # the synthetic tree exercises the rule
    assert all(not ids & used["ohsumed"] for ids in twins_held)
    assert report["tasks"]["ohsumed_category"]["excluded"]["of_which_same_title_twins"] > 0
    # the builder's own guard: an excluded paper is refused where it would enter the table
    mix = _Mixture(data_tree, tmp_path, {}, {s: set(ids) for s, ids in excluded.items()})
    with pytest.raises(AssertionError, match="evaluation document"):
        mix.add_paper("acl-abs", next(iter(excluded["acl"])), "t", "a")


def test_the_built_folder_runs_without_the_data_tree(built_suite, tmp_path):
    """Carried elsewhere, the folder is all `sciembed evaluate` needs (relative paths only)."""
    from typer.testing import CliRunner

    from sciembed.cli import app

    copy = tmp_path / "carried"
    shutil.copytree(built_suite.parent, copy)
    lines = [json.loads(line) for line in (copy / "tasks.jsonl").read_text().splitlines()]
    assert str(built_suite.parent) not in json.dumps(lines)
    for line in lines:  # one grid-search seed and no few-shot runs keep this test fast
        line.pop("few_shot", None)
        if "cv_seeds" in line:
            line["cv_seeds"] = 1
    (copy / "tasks.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    args = ["evaluate", "-m", "random", "-m", "random:16", "-m", "random:8", "--tasks", str(copy)]
    result = CliRunner().invoke(app, [*args, "-o", str(out), "--no-cache", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    for model in report["models"]:
        failed = {n: r.get("reason") for n, r in model["tasks"].items() if r["status"] != "ok"}
        assert failed == {}
    comparison = report["comparisons"]["models"]["random:16"]["averages"]
    assert comparison["out_of_training"]["n"] == comparison["out_of_training"]["of"] == 12
    assert (out / "task_correlation.png").stat().st_size > 1000


def test_a_missing_source_fails_only_its_tasks(data_tree, tmp_path):
    partial = tmp_path / "data"
    shutil.copytree(data_tree, partial, ignore=shutil.ignore_patterns("ohsumed"))
    tasks_path = build_lite(data_root=partial, out_dir=tmp_path / "suite")
    manifest = json.loads((tasks_path.parent / "manifest.json").read_text())
    assert list(manifest["failed"]) == ["ohsumed"]
    assert not (tmp_path / "suite").with_name(".suite.building").exists()
