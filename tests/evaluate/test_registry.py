"""Task lists: SciRepEval's own file, relative paths, line-numbered errors."""

import json

import pytest

from sciembed.evaluate.registry import TaskFileError, parse_task_lines, read_task_file, select_tasks


def test_reads_scirepeval_task_registry(tmp_path):
    from conftest import SHARED_DATA

    path = SHARED_DATA / "scirepeval-sample" / "scirepeval_tasks.jsonl"
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is missing")
    tasks = read_task_file(path)
    by_name = {t.name: t for t in tasks}
    assert len(tasks) == len([line for line in path.read_text().splitlines() if line.strip()])
    search = by_name["Search"]
    assert search.type == "adhoc_search" and search.fields == ["title", "abstract", "venue", "year"]
    assert search.meta.hf_name == "allenai/scirepeval" and search.meta.hf_config == "search"
    assert search.in_training and search.query_format == "adhoc_query" and search.format == "proximity"
    assert by_name["Fields of study"].multi_label and by_name["Fields of study"].in_training
    assert not by_name["Biomimicry"].in_training and by_name["Biomimicry"].few_shot[0].sample_size == 64
    assert by_name["Paper-Reviewer Matching"].kind == "reviewer_matching"
    assert by_name["SciDocs MAG"].embeddings_key == by_name["SciDocs MeSH"].embeddings_key
    assert by_name["SciDocs Cite"].simple_format


def test_local_paths_are_relative_to_the_task_file(tmp_path):
    folder = tmp_path / "somewhere" / "tasks"
    folder.mkdir(parents=True)
    line = {"name": "t", "type": "regression", "data": {"meta": "../d/meta.jsonl", "test": "/abs/path"}}
    (folder / "x.jsonl").write_text(json.dumps(line) + "\n")
    (task,) = read_task_file(folder / "x.jsonl")
    assert task.meta.path == folder / ".." / "d" / "meta.jsonl"
    assert str(task.test.path) == "/abs/path"
    assert task.metrics == ["kendalltau"] and not task.in_training


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"name": "a", "type": "clustering", "data": {"meta": "m"}}', "'type' must be one of"),
        ('{"name": "a", "type": "proximity"}', "missing 'data'"),
        ('{"name": "a", "type": "classification", "data": {"meta": "m"}}', "needs data.test"),
        ('{"name": "a", "type": "proximity", "data": {"meta": "m"}, "colour": 1}', "unknown keys"),
        ('{"name": "a", "type": "proximity", "data": {"meta": 3}}', "data.meta must be"),
        (
            '{"name": "a", "type": "regression", "data": {"meta": "m", "test": "t"}, "few_shot": [{"sample_size": 5}]}',
            "few_shot",
        ),
        ('["a list"]', "expected a JSON object"),
    ],
)
def test_invalid_lines_are_rejected_with_their_line_number(line, message):
    good = '{"name": "ok", "type": "proximity", "data": {"meta": "m"}}'
    with pytest.raises(TaskFileError, match=message) as info:
        parse_task_lines(["# a comment", good, "", line], source="tasks.jsonl")
    assert info.value.line == 4
    assert str(info.value).startswith("tasks.jsonl:4:")


def test_duplicate_names_and_selection():
    line = '{"name": "Same", "type": "proximity", "data": {"meta": "m"}}'
    with pytest.raises(TaskFileError, match="duplicate task name"):
        parse_task_lines([line, line])
    tasks = parse_task_lines([line, line.replace("Same", "Other")])
    assert [t.name for t in select_tasks(tasks, ["other"])] == ["Other"]
    with pytest.raises(ValueError, match="unknown task names"):
        select_tasks(tasks, ["nope"])
