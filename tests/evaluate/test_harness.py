"""The harness end to end on task folders it has never seen: formats, adapters, cache, failures."""

import json
import shutil

import numpy as np
import pytest
from conftest import RecordingEncoder

from sciembed.evaluate import BM25Model, RandomModel, read_results, read_task_file, run_benchmark
from sciembed.evaluate.benchmark import DataMemo, Embedder, evaluate_task, load_task_data
from sciembed.evaluate.cache import EmbeddingCache


def test_unseen_local_task_folders_run_for_all_formats(unseen_task_file, tiny_eval_model, tmp_path):
    tasks = read_task_file(unseen_task_file)
    report = run_benchmark(
        [tiny_eval_model, RandomModel(), BM25Model()], tasks, output_dir=tmp_path / "out", cache_dir=tmp_path / "cache"
    )
    tiny, random_model, bm25 = report.models
    for model in (tiny, random_model):
        assert {n: r.status for n, r in model.tasks.items()} == {t.name: "ok" for t in tasks}
        for result in model.tasks.values():
            assert result.missing_counts == {}
            assert result.task_type and (result.n_items == 0) == (result.task == "Reviewers")  # no per-item data
    assert set(tiny.tasks["Topic"].metrics) == {
        "f1_macro",
        "accuracy",
        "fewshot_6_f1_macro",
        "fewshot_6_accuracy",
    }
    assert set(tiny.tasks["Reviewers"].metrics) >= {"hard_P_5", "soft_P_10", "P_5"}
    # BM25 ranks proximity/search only; its lexical match finds the topic
    assert bm25.tasks["Topic"].status == "skipped"
    assert bm25.tasks["Lookup"].main_score > 90
    assert bm25.tasks["Related"].ok
    assert bm25.averages["overall"].n == 3 and bm25.averages["overall"].of == 7
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["models"][0]["info"]["fingerprint"] == tiny_eval_model.fingerprint
    assert {"python", "sklearn", "pytrec_eval"} <= set(saved["versions"])
    assert (tmp_path / "out" / "results.png").stat().st_size > 1000
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| Topic | classification | out | f1_macro |" in table and "avg in-training" in table
    assert [t["name"] for t in saved["tasks"]] == [t.name for t in tasks]
    # results.json reads back into the same typed result and writes the same JSON
    again = read_results(tmp_path / "out" / "results.json")
    assert again.to_json() == saved and again.models[2].tasks["Topic"].status == "skipped"
    assert again.comparisons.models["random"].tasks["Topic"].interval.n == tiny.tasks["Topic"].n_items


def test_second_run_only_rescores(unseen_task_file, tiny_eval_model, tmp_path):
    tasks = read_task_file(unseen_task_file)
    first = run_benchmark([tiny_eval_model], tasks, cache_dir=tmp_path / "cache").models[0]
    assert first.embeddings.computed > 0
    # shared documents (same meta, same embeddings key) were embedded once per adapter key
    assert first.embeddings.from_cache > 0
    counting = RecordingEncoder(tiny_eval_model)
    second = run_benchmark([counting], tasks, cache_dir=tmp_path / "cache").models[0]
    assert counting.calls == [] and second.embeddings.computed == 0
    for name, result in first.tasks.items():
        assert second.tasks[name].metrics == pytest.approx(result.metrics)


def test_cache_is_keyed_by_fingerprint_adapter_and_text(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp1", "base")
    vectors, computed = cache.get_or_compute(["a", "b", "a"], lambda pos: np.eye(3, dtype=np.float32)[: len(pos)])
    assert computed == 2 and vectors.shape == (3, 3)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    again = EmbeddingCache(tmp_path, "fp1", "base")  # from disk
    found, missing = again.lookup(["b", "c"])
    assert missing == [1] and found[0] is not None
    assert EmbeddingCache(tmp_path, "fp2", "base").lookup(["a"])[1] == [0]
    assert EmbeddingCache(tmp_path, "fp1", "proximity").lookup(["a"])[1] == [0]


class SpyModel(RandomModel):
    """Random embeddings that record which adapter format each text was embedded with."""

    def __init__(self, formats=()):
        super().__init__(dim=8, name="spy")
        self.seen = []
        self.formats = formats

    def adapter_key(self, format):
        return format if self.formats else "base"

    def encode(self, papers, format, fields=None):
        self.seen.append((format, tuple(fields) if fields else None, len(papers)))
        return super().encode(papers, format, fields)


def test_each_task_uses_the_adapter_of_its_format(unseen_task_file):
    tasks = {t.name: t for t in read_task_file(unseen_task_file)}
    memo = DataMemo()
    spy = SpyModel(formats=("all",))
    embedder = Embedder(spy, cache_dir=None)
    expected = {
        "Topic": {"classification"},
        "Year": {"regression"},
        "Related": {"proximity"},
        "Lookup": {"adhoc_query", "proximity"},
        "Reviewers": {"proximity"},
    }
    for name, formats in expected.items():
        spy.seen.clear()
        evaluate_task(tasks[name], load_task_data(tasks[name], memo), spy, embedder)
        assert {f for f, _, _ in spy.seen} == formats, name
    spy.seen.clear()
    evaluate_task(tasks["Lookup"], load_task_data(tasks["Lookup"], memo), spy, embedder)
    assert spy.seen == []  # in-run reuse, even without a disk cache


def test_real_adapters_change_the_scores_by_format(unseen_task_file, tiny_adapter_eval_model, tiny_eval_model):
    tasks = [t for t in read_task_file(unseen_task_file) if t.name == "Lookup"]
    with_adapters = run_benchmark([tiny_adapter_eval_model], tasks, cache_dir=None).models[0]
    assert with_adapters.tasks["Lookup"].ok
    base_only = run_benchmark([tiny_eval_model], tasks, cache_dir=None).models[0]
    assert with_adapters.info["formats"] and not base_only.info["formats"]


def test_missing_documents_are_counted_and_reported(unseen_task_file, tmp_path):
    tasks = read_task_file(unseen_task_file)
    corpus = unseen_task_file.parent.parent / "my data" / "corpus" / "docs.jsonl"
    lines = corpus.read_text().splitlines()
    # drop two documents, make one unusable (no text)
    broken = json.loads(lines[3])
    broken["title"] = broken["abstract"] = None
    corpus.write_text("\n".join([*lines[2:3], json.dumps(broken), *lines[4:]]) + "\n")
    report = run_benchmark([RandomModel()], tasks, output_dir=tmp_path / "out", cache_dir=None)
    topic = report.models[0].tasks["Topic"]
    assert topic.ok
    assert topic.missing["train"] + topic.missing["test"] == 3
    assert (
        topic.missing["skipped_records"] == 1 and "neither title nor abstract" in topic.missing["skipped_examples"][0]
    )
    assert "missing" in (tmp_path / "out" / "results.md").read_text()


def test_unloadable_task_fails_with_reason_while_others_run(unseen_task_file, tmp_path):
    tasks = read_task_file(unseen_task_file)
    shutil.rmtree(unseen_task_file.parent.parent / "my data" / "prox_test")
    hf_data = {
        "meta": {"name": "allenai/scirepeval", "config": "relish"},
        "test": {"name": "allenai/scirepeval_test", "config": "relish"},
    }
    hf_line = json.dumps({"name": "From the hub", "type": "proximity", "data": hf_data})
    from sciembed.evaluate import parse_task_lines

    tasks += parse_task_lines([hf_line])
    report = run_benchmark([RandomModel()], tasks, output_dir=tmp_path / "out", cache_dir=None)
    results = report.models[0].tasks
    assert results["Related"].status == "failed" and "test_qrel.jsonl" in results["Related"].reason
    assert results["From the hub"].status == "failed"
    assert "data could not be loaded" in results["From the hub"].reason
    assert all(results[t.name].ok for t in tasks if t.name not in ("Related", "From the hub"))
    assert "failed" in (tmp_path / "out" / "results.md").read_text()
    assert report.models[0].averages["overall"].n == len(tasks) - 2


def test_model_without_the_needed_adapter_fails_that_task(unseen_task_file, tmp_path):
    from conftest import make_tiny_model

    from sciembed.evaluate import SciEmbedEvalModel

    model = SciEmbedEvalModel(make_tiny_model(formats=("proximity",)), name="prx-only")
    report = run_benchmark([model], read_task_file(unseen_task_file), cache_dir=None)
    results = report.models[0].tasks
    assert results["Topic"].status == "failed" and "no 'classification' adapter" in results["Topic"].reason
    assert results["Related"].ok


def test_unloadable_model_is_reported(unseen_task_file, tmp_path):
    report = run_benchmark([str(tmp_path / "no-such-model")], read_task_file(unseen_task_file), cache_dir=None)
    assert report.models[0].status == "failed" and report.models[0].reason
