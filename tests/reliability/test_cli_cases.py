"""Bad input and bad settings through the real command line (typer's runner on ``sciembed.cli.app``):
one row per probe case (issue 12). Every row must end with exactly one line ``error: ...`` on stderr
matching ``error``, exit status 2, no traceback, the input unchanged and no output that looks
complete. A new probe case is a new row."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sciembed.cli import app

runner = CliRunner()


def papers_file(tmp: Path, name: str = "papers.jsonl", n: int = 10) -> Path:
    path = tmp / name
    rows = [
        {"paper_id": f"p{i}", "title": f"Paper {i} on topic {i % 3}", "abstract": "words " * (i + 1)} for i in range(n)
    ]
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def broken_model(tmp: Path, model: Path, damage: Callable[[Path], None]) -> Path:
    folder = tmp / "model"
    shutil.copytree(model, folder)
    damage(folder)
    return folder


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / "sciembed.json"
        config = json.loads(path.read_text())
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        path.write_text(json.dumps(config))

    return damage


def _remove(*names: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()

    return damage


def _truncate(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / name
        path.write_bytes(path.read_bytes()[:200])

    return damage


def _replace_weights(folder: Path) -> None:
    from conftest import make_tiny_model

    from sciembed.model import save_model

    other = folder.parent / "other"
    save_model(make_tiny_model(seed=7), other)
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")


def _both(*damages: Callable[[Path], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        for item in damages:
            item(folder)

    return damage


def _model_case(damage: Callable[[Path], None], command: str = "embed") -> Callable[[Path, Path], list]:
    def setup(tmp: Path, model: Path) -> list:
        folder = broken_model(tmp, model, damage)
        if command == "info":
            return ["info", folder]
        if command == "export":
            return ["export", "onnx", folder, tmp / "onnx"]
        return ["embed", papers_file(tmp), tmp / "out.parquet", "--model", folder]

    return setup


def _embed(*extra: object, src: str = "papers.jsonl") -> Callable[[Path, Path], list]:
    def setup(tmp: Path, model: Path) -> list:
        return ["embed", papers_file(tmp, src), tmp / "out.parquet", "--model", model, *extra]

    return setup


def _same_file(kind: str) -> Callable[[Path, Path], list]:
    def setup(tmp: Path, model: Path) -> list:
        src = papers_file(tmp, "papers.parquet" if kind == "parquet" else "papers.jsonl")
        out = src
        if kind == "symlink":
            out = tmp / "out.parquet"
            out.symlink_to(src)
        elif kind == "hardlink":
            out = tmp / "out.parquet"
            os.link(src, out)
        return ["embed", src, out, "--model", model]

    return setup


def _truncated_gzip(tmp: Path, model: Path) -> list:
    src = tmp / "papers.jsonl.gz"
    src.write_bytes(gzip.compress(papers_file(tmp, n=50).read_bytes())[:-40])
    return ["embed", src, tmp / "out.parquet", "--model", model]


def _trailing_array(tmp: Path, model: Path) -> list:
    src = tmp / "papers.json"
    src.write_text(json.dumps([{"paper_id": "a", "title": "t"}]) + "\n" + json.dumps([{"paper_id": "b", "title": "u"}]))
    return ["embed", src, tmp / "out.parquet", "--model", model, "--skip-invalid"]


def _empty_input(tmp: Path, model: Path) -> list:
    (tmp / "papers.jsonl").write_text("\n")
    return ["embed", tmp / "papers.jsonl", tmp / "out.parquet", "--model", model]


def _input_directory(tmp: Path, model: Path) -> list:
    (tmp / "folder").mkdir()
    return ["embed", tmp / "folder", tmp / "out.parquet", "--model", model]


def _output_directory(tmp: Path, model: Path) -> list:
    (tmp / "out").mkdir()
    return ["embed", papers_file(tmp), tmp / "out", "--model", model]


def _read_only_location(tmp: Path, model: Path) -> list:
    if os.geteuid() == 0:  # root writes anywhere on a normal file system; sysfs refuses even root
        target = Path("/sys/sciembed-probe/out.parquet")
    else:
        locked = tmp / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "out.parquet"
    return ["embed", papers_file(tmp), target, "--model", model]


# ---- evaluate, mine-triplets, train ------------------------------------------------------------------
def _task_file(tmp: Path, meta: Path | None = None, metrics: tuple[str, ...] = ("f1_macro",)) -> Path:
    folder = tmp / "task"
    folder.mkdir(exist_ok=True)
    if meta is None:
        meta = folder / "meta.jsonl"
        meta.write_text(
            "".join(json.dumps({"doc_id": f"d{i}", "title": f"doc {i} topic {i % 2}"}) + "\n" for i in range(12))
        )
    for split, ids in (("train", range(0, 8)), ("test", range(8, 12))):
        (folder / f"{split}.csv").write_text("paper_id,label\n" + "".join(f"d{i},{i % 2}\n" for i in ids))
    tasks = tmp / "tasks.jsonl"
    task = {"name": "toy", "type": "classification", "data": {"meta": str(meta), "test": str(folder)}}
    tasks.write_text(json.dumps({**task, "metrics": list(metrics)}) + "\n")
    return tasks


def _evaluate(model: str, broken_data: bool = False, metrics: tuple[str, ...] = ("f1_macro",)):
    def setup(tmp: Path, _model: Path) -> list:
        tasks = _task_file(tmp, tmp / "missing.jsonl" if broken_data else None, metrics)
        return ["evaluate", "--model", model, "--tasks", tasks, "--output", tmp / "eval", "--no-cache"]

    return setup


def _mine_nothing(tmp: Path, _model: Path) -> list:
    papers = tmp / "papers.jsonl"
    papers.write_text("".join(json.dumps({"paper_id": f"p{i}", "title": f"t {i}"}) + "\n" for i in range(5)))
    edges = tmp / "edges.txt"
    edges.write_text("x1,x2\nx3,x4\n")  # no edge between papers with text
    return ["mine-triplets", "--papers", papers, "--edges", edges, "--output", tmp / "mined"]


def _train_base(triplets: str | None, extra: str = "") -> Callable[[Path, Path], list]:
    def setup(tmp: Path, model: Path) -> list:
        train = tmp / "train.jsonl"
        train.write_text(triplets or "")
        config = tmp / "stage1.yaml"
        config.write_text(
            f"init_model: {model}\ntrain_triplets: {train}\noutput_dir: {tmp / 'run'}\nbatch_size: 4\nepochs: 1\n"
            f"max_length: 32\nprogress: false\n{extra}"
        )
        return ["train", "base", "--config", config]

    return setup


GOOD_TRIPLET = json.dumps(
    {
        "query": {"corpus_id": 1, "title": "a"},
        "pos": {"corpus_id": 2, "title": "b"},
        "neg": {"corpus_id": 3, "title": "c"},
    }
)


@dataclass(frozen=True)
class CliCase:
    name: str
    setup: Callable[[Path, Path], list]
    error: str  # regex the one error line must match (after "error: ")


CASES = [
    CliCase("output = input (JSON lines)", _same_file("jsonl"), "refusing to overwrite the input"),
    CliCase("output = input (Parquet)", _same_file("parquet"), "refusing to overwrite the input"),
    CliCase("output is a symlink to the input", _same_file("symlink"), "refusing to overwrite the input"),
    CliCase("output is a hard link of the input", _same_file("hardlink"), "refusing to overwrite the input"),
    CliCase("output is a directory", _output_directory, "out: is a directory"),
    CliCase("input is a directory", _input_directory, "folder: is a directory"),
    CliCase(
        "input does not exist",
        lambda tmp, m: ["embed", tmp / "nope.jsonl", tmp / "o.parquet", "--model", m],
        "nope.jsonl: no such file",
    ),
    CliCase("truncated gzip", _truncated_gzip, r"papers\.jsonl\.gz:\d+: truncated or corrupt gzip"),
    CliCase(
        "content after a JSON array, even with --skip-invalid",
        _trailing_array,
        r"papers\.json:2: content after the end of the JSON document",
    ),
    CliCase("no papers at all", _empty_input, "no papers to embed"),
    CliCase("--batch-size 0", _embed("--batch-size", "0"), "--batch-size"),
    CliCase("--chunk-size 0", _embed("--chunk-size", "0"), "--chunk-size"),
    CliCase("--limit -1", _embed("--limit", "-1"), "--limit"),
    CliCase("--device that is no device", _embed("--device", "gpu0"), "'gpu0' is not a device"),
    CliCase("--device on a GPU this machine lacks", _embed("--device", "cuda:7"), "cuda:7"),
    CliCase("read-only output location", _read_only_location, "not writable|cannot write"),
    CliCase(
        "model without tokenizer files",
        _model_case(_remove("tokenizer.json", "tokenizer_config.json")),
        "no tokenizer files",
    ),
    CliCase(
        "text_fields typo",
        _model_case(_edit_config(text_fields=["titel", "abstract"])),
        r"sciembed\.json: unknown text_fields \['titel'\]",
    ),
    CliCase("unknown pooling", _model_case(_edit_config(pooling="max")), r"sciembed\.json: unknown pooling 'max'"),
    CliCase(
        "max_length beyond the positions",
        _model_case(_edit_config(max_length=100000)),
        r"sciembed\.json: max_length 100000 is beyond the model's",
    ),
    CliCase(
        "weights replaced by another model's",
        _model_case(_replace_weights),
        r"model\.safetensors: sha256 \w+ does not match base_sha256",
    ),
    CliCase(
        "weights damaged (pinned sha256)",
        _model_case(_truncate("model.safetensors")),
        r"model\.safetensors: sha256 \w+ does not match",
    ),
    CliCase(
        "weights damaged (no sha256 pinned)",
        _model_case(_both(_edit_config(base_sha256=None), _truncate("model.safetensors"))),
        r"model\.safetensors: not a readable safetensors file",
    ),
    CliCase("weight file missing", _model_case(_remove("model.safetensors")), "no weight file"),
    CliCase(
        "sciembed.json not JSON",
        _model_case(lambda f: (f / "sciembed.json").write_text("{pooling")),
        r"sciembed\.json: invalid JSON",
    ),
    CliCase(
        "adapter weights damaged",
        _model_case(_truncate("adapters/proximity/adapter.safetensors")),
        r"adapter\.safetensors: cannot load the adapter weights",
    ),
    CliCase("info on a model without tokenizer", _model_case(_remove("tokenizer.json"), "info"), "no tokenizer files"),
    CliCase(
        "info on a model with replaced weights", _model_case(_replace_weights, "info"), "does not match base_sha256"
    ),
    CliCase("info on a folder that is no model", lambda tmp, m: ["info", tmp], "not a model folder"),
    CliCase("ONNX export of a broken model", _model_case(_edit_config(pooling="max"), "export"), "unknown pooling"),
    CliCase("evaluate: the only model is unknown", _evaluate("no-such-model-anywhere"), "could not be loaded"),
    CliCase("evaluate: every task failed", _evaluate("random", broken_data=True), "no task could be evaluated"),
    CliCase("evaluate: metric typo", _evaluate("random", metrics=("f1_macor",)), "unknown classification metric"),
    CliCase("mine-triplets that finds no triplet", _mine_nothing, "no training triplets"),
    CliCase("train on an empty triplet file", _train_base(None), r"train\.jsonl: no triplets"),
    CliCase(
        "train on a malformed triplet file",
        _train_base(GOOD_TRIPLET + '\n{"query": \n'),
        r"train\.jsonl:2: invalid JSON",
    ),
    CliCase(
        "train with a bad lr_by_prefix",
        _train_base(GOOD_TRIPLET + "\n", "optim:\n  lr_by_prefix: [1, 2]\n"),
        "lr_by_prefix",
    ),
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_case(tmp_path: Path, tiny_model_folder: Path, case: CliCase) -> None:
    args = [str(a) for a in case.setup(tmp_path, tiny_model_folder)]
    inputs = _snapshot(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # on its own line, bar or not
    assert result.stderr.rstrip().endswith(lines[0])
    assert "Traceback" not in result.output + result.stderr
    assert re.search(case.error, lines[0]), lines[0]
    after = _snapshot(tmp_path)
    changed = [name for name, data in inputs.items() if after.get(name) != data]
    assert not changed, f"inputs changed: {changed}"
    assert not (tmp_path / "out.parquet").exists() or (tmp_path / "out.parquet").is_symlink() or "link" in case.name
    leftovers = [name for name in after if name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_debug_shows_the_traceback(tmp_path: Path, tiny_model_folder: Path) -> None:
    args = [str(a) for a in _empty_input(tmp_path, tiny_model_folder)]
    result = runner.invoke(app, ["--debug", *args])
    assert result.exit_code != 0 and isinstance(result.exception, ValueError)
    assert "no papers to embed" in str(result.exception)


def test_skip_invalid_with_a_broken_first_line_keeps_every_valid_record(tmp_path: Path, tiny_model_folder: Path):
    src = tmp_path / "papers.jsonl"
    good = papers_file(tmp_path, "good.jsonl").read_text()
    src.write_text('{"paper_id": "broken", "title": \n' + good)
    result = runner.invoke(
        app, ["embed", str(src), str(tmp_path / "out.parquet"), "--model", str(tiny_model_folder), "--skip-invalid"]
    )
    assert result.exit_code == 0, result.output
    assert "10 papers read, 1 invalid records skipped" in result.output and f"{src}:1: invalid JSON" in result.output
    from sciembed.embed import read_embeddings

    assert read_embeddings(tmp_path / "out.parquet")[0] == [f"p{i}" for i in range(10)]
