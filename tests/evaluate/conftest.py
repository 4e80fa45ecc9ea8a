"""Fixtures of the evaluate tests: tiny random encoders and unseen SciRepEval-format task folders.

pytest imports every ``conftest.py`` under the module name ``conftest``; tests elsewhere do
``from conftest import make_tiny_model``, so this file re-exports the root conftest's helpers.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from _pytest.fixtures import getfixturemarker

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
_spec = importlib.util.spec_from_file_location("_sciembed_root_conftest", _ROOT_CONFTEST)
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
# every public helper (not the fixtures: pytest already finds those in the root conftest)
for _name, _value in vars(_root).items():
    if not _name.startswith("_") and getfixturemarker(_value) is None and _name not in globals():
        globals()[_name] = _value
make_tiny_model = _root.make_tiny_model
SHARED_DATA = _root.SHARED_DATA

TOPICS = {
    "nlp": ["language model", "translation", "parsing", "sentiment", "summarization", "dialogue"],
    "vision": ["image segmentation", "object detection", "convolution", "video", "pixels", "camera"],
    "bio": ["protein folding", "gene expression", "cell biology", "dna sequencing", "enzymes", "clinical trial"],
}


def make_docs(n_per_topic: int = 8) -> list[dict]:
    """Small, topic-separable documents: doc ids ``<topic>-<i>``."""
    docs = []
    for topic, words in TOPICS.items():
        for i in range(n_per_topic):
            w1, w2 = words[i % len(words)], words[(i + 2) % len(words)]
            docs.append(
                {
                    "doc_id": f"{topic}-{i}",
                    "title": f"{w1.title()} study {i} about {w2}",
                    "abstract": f"We study {w1} and {w2} in {topic}. Results on {w1} improve {w2} by {i} points.",
                    "venue": f"{topic.upper()} Conf",
                    "year": 2000 + i,
                }
            )
    return docs


def _jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _csv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["paper_id", "label"])
        for pid, label in rows:
            writer.writerow([pid, json.dumps(label) if isinstance(label, list) else label])


def build_unseen_tasks(root: Path) -> Path:
    """Local task folders of every format in a layout the code has never seen; returns the task file."""
    docs = make_docs()
    ids = [d["doc_id"] for d in docs]
    topic = {d["doc_id"]: d["doc_id"].split("-")[0] for d in docs}
    data = root / "my data"
    _jsonl(data / "corpus" / "docs.jsonl", docs)
    # classification (single and multi-label), regression
    train = [i for i in ids if int(i.split("-")[1]) % 3 != 0]
    test = [i for i in ids if int(i.split("-")[1]) % 3 == 0]
    _csv(data / "clf" / "train.csv", [(i, topic[i]) for i in train])
    _csv(data / "clf" / "test.csv", [(i, topic[i]) for i in test])
    multi = {i: sorted({topic[i], "even" if int(i.split("-")[1]) % 2 == 0 else "odd"}) for i in ids}
    _csv(data / "multi" / "train.csv", [(i, multi[i]) for i in train])
    _csv(data / "multi" / "test.csv", [(i, multi[i]) for i in test])
    year = {d["doc_id"]: d["year"] for d in docs}
    _csv(data / "rgn" / "train.csv", [(i, year[i]) for i in train])
    _csv(data / "rgn" / "test.csv", [(i, year[i]) for i in test])
    # proximity, query/candidates lines; qrels in a separate folder
    by_id = {d["doc_id"]: d for d in docs}
    prox_rows, qrels = [], []
    for t in TOPICS:
        q = f"{t}-0"
        cands = [f"{t}-1", f"{t}-2"] + [f"{o}-1" for o in TOPICS if o != t]
        prox_rows.append({"query": by_id[q], "candidates": [by_id[c] for c in cands]})
        qrels += [{"query_id": q, "cand_id": c, "score": int(c.startswith(t))} for c in cands]
    _jsonl(data / "prox" / "meta.jsonl", prox_rows)
    _jsonl(data / "prox_test" / "test_qrel.jsonl", qrels)
    # search: string queries, graded scores inside the candidates and in qrels
    search_rows, search_qrels = [], []
    for n, t in enumerate(TOPICS):
        qid = f"s{n}"
        cands = [by_id[f"{o}-{k}"] for o in TOPICS for k in (3, 4)]
        rows = [dict(c, score=2 if c["doc_id"] == f"{t}-3" else int(c["doc_id"].startswith(t))) for c in cands]
        search_rows.append({"query": TOPICS[t][3], "doc_id": qid, "candidates": rows})
        search_qrels += [{"query_id": qid, "cand_id": r["doc_id"], "score": r["score"]} for r in rows]
    _jsonl(data / "search" / "meta.jsonl", search_rows)
    _jsonl(data / "search" / "test_qrel.jsonl", search_qrels)
    # simple_format proximity: plain documents + qrels
    simple_qrels = [
        {"query_id": f"{t}-5", "cand_id": c, "score": int(c.startswith(t))}
        for t in TOPICS
        for c in (f"{t}-6", f"{t}-7", *[f"{o}-6" for o in TOPICS if o != t])
    ]
    _jsonl(data / "simple" / "test_qrel.jsonl", simple_qrels)
    # paper-reviewer matching
    reviewers = [{"r_id": f"r-{t}", "papers": [f"{t}-{k}" for k in (1, 2, 3, 4)]} for t in TOPICS]
    _jsonl(data / "reviewers" / "reviewer_metadata.jsonl", reviewers)
    hard = [{"query_id": f"{t}-7", "cand_id": f"r-{o}", "score": int(o == t)} for t in TOPICS for o in TOPICS]
    soft = [{"query_id": f"{t}-7", "cand_id": f"r-{o}", "score": 1 if o == t else 0} for t in TOPICS for o in TOPICS]
    _jsonl(data / "prm" / "test_hard_qrel.jsonl", hard)
    _jsonl(data / "prm" / "test_soft_qrel.jsonl", soft)
    tasks = [
        {
            "name": "Topic",
            "type": "classification",
            "data": {"meta": "my data/corpus/docs.jsonl", "test": "my data/clf"},
            "metrics": ["f1_macro", "accuracy"],
            "few_shot": [{"sample_size": 6, "iterations": 2}],
            "embeddings": {"save": "embeddings/corpus.jsonl"},
        },
        {
            "name": "Topic multi",
            "type": "classification",
            "multi_label": True,
            "data": {"meta": "my data/corpus/docs.jsonl", "test": "my data/multi"},
            "metrics": ["f1_macro"],
            "embeddings": {"load": "embeddings/corpus.jsonl"},
        },
        {
            "name": "Year",
            "type": "regression",
            "data": {"meta": "my data/corpus/docs.jsonl", "test": "my data/rgn"},
            "metrics": ["kendalltau"],
            "in_training": True,
        },
        {
            "name": "Related",
            "type": "proximity",
            "data": {"meta": "my data/prox/meta.jsonl", "test": "my data/prox_test"},
            "metrics": ["map", "ndcg", "P_5"],
        },
        {
            "name": "Lookup",
            "type": "adhoc_search",
            "data": {"meta": "my data/search/meta.jsonl", "test": "my data/search"},
            "fields": ["title", "abstract", "venue", "year"],
            "metrics": ["ndcg"],
        },
        {
            "name": "Simple",
            "type": "proximity",
            "data": {"simple_format": True, "meta": "my data/corpus/docs.jsonl", "test": "my data/simple"},
            "metrics": ["map"],
        },
        {
            "name": "Reviewers",
            "type": "proximity",
            "data": {"meta": "my data/corpus/docs.jsonl", "test": "my data/prm", "reviewers": "my data/reviewers"},
            "metrics": ["P_5", "P_10"],
        },
    ]
    task_file = root / "tasks" / "scirepeval_tasks.jsonl"
    task_file.parent.mkdir(parents=True, exist_ok=True)
    # paths are relative to the task file's folder
    lines = []
    for t in tasks:
        for key in ("meta", "test", "reviewers"):
            if isinstance(t["data"].get(key), str):
                t["data"][key] = "../" + t["data"][key]
        lines.append(json.dumps(t))
    task_file.write_text("\n".join(lines) + "\n")
    return task_file


@pytest.fixture
def unseen_task_file(tmp_path) -> Path:
    return build_unseen_tasks(tmp_path / "elsewhere")


@pytest.fixture
def tiny_eval_model():
    from sciembed.evaluate import SciEmbedEvalModel

    return SciEmbedEvalModel(make_tiny_model(), name="tiny")


@pytest.fixture
def tiny_adapter_eval_model():
    from sciembed.evaluate import SciEmbedEvalModel

    return SciEmbedEvalModel(
        make_tiny_model(formats=("proximity", "classification", "regression", "adhoc_query")), name="tiny-adapters"
    )


def load_script(name: str):
    """A module of ``scripts/`` by file name (they are not a package)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SCRIPT_TASKS = ("Topic", "Year", "Related", "Lookup")  # classification, regression (in training), proximity, search


@pytest.fixture
def two_model_results(unseen_task_file, tmp_path) -> Path:
    """``results.json`` of a start and a candidate (random models) on one task of each format."""
    from sciembed.evaluate import RandomModel, read_task_file, run_benchmark

    tasks = [t for t in read_task_file(unseen_task_file) if t.name in SCRIPT_TASKS]
    models = [RandomModel(seed=1, name="start"), RandomModel(seed=2, name="cand")]
    run_benchmark(models, tasks, output_dir=tmp_path / "run", cache_dir=None, n_boot=200)
    return tmp_path / "run" / "results.json"
