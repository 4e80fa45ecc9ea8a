"""The exported backends start without torch: no torch/transformers import, no model load on reuse."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PAPERS, make_tiny_model, shared_file

pytest.importorskip("onnxruntime")

from sciembed.model import load_model  # noqa: E402
from sciembed.model.export import export_onnx  # noqa: E402
from sciembed.model.export_cache import AUTO_EXPORTS, cached_export  # noqa: E402
from sciembed.model.export_tokenizer import ExportTokenizer  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory):
    return export_onnx(make_tiny_model(formats=("proximity",)), tmp_path_factory.mktemp("onnx") / "fp32")


def test_embed_through_an_onnx_export_imports_neither_torch_nor_transformers(onnx_folder, tmp_path):
    papers = tmp_path / "papers.jsonl"
    papers.write_text("\n".join(json.dumps(p) for p in PAPERS) + "\n")
    out = tmp_path / "out.parquet"
    script = (
        "import sys\n"
        "from sciembed.cli import app\n"
        f"args = ['embed', {str(papers)!r}, {str(out)!r}, '-q', '-m', {str(onnx_folder)!r}, '--backend', 'onnx']\n"
        "try:\n    app(args)\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    import pyarrow.parquet as pq

    vectors = np.stack(pq.read_table(out).column("embedding").to_pylist())
    assert vectors.shape == (len(PAPERS), load_model(onnx_folder, backend="onnx").dimension)


def test_export_tokenizer_gives_the_hugging_face_ids_and_attributes(onnx_folder):
    from transformers import AutoTokenizer

    light, hf = ExportTokenizer(onnx_folder), AutoTokenizer.from_pretrained(str(onnx_folder))
    assert light.backend_tokenizer.to_str() == hf.backend_tokenizer.to_str()
    assert (light.sep_token, light.pad_token_id, light.truncation_side) == (hf.sep_token, hf.pad_token_id, "right")
    assert light.cls_token == hf.cls_token  # anything else: the Hugging Face tokenizer, loaded on first use
    with open(shared_file("scitldr/dev.jsonl"), encoding="utf-8") as lines:
        texts = [" ".join(json.loads(next(lines))["source"]) for _ in range(50)] + ["naïve Café ∑ 東京", ""]
    encoder = load_model(onnx_folder, backend="onnx")
    assert encoder.tokenize(texts) == hf(texts, truncation=True, max_length=encoder.config.max_length)["input_ids"]


def quick_exporters(calls: list) -> dict:
    """The automatic onnx export (its variant name) as an fp32 proximity graph: seconds less than int8."""

    def export(model, folder):
        calls.append(folder)
        return export_onnx(model, folder, formats=["proximity"])

    return {"onnx": (AUTO_EXPORTS["onnx"][0], export)}


def imports_torch_to_find(model: Path) -> bool:
    """Whether a fresh process that looks the export of ``model`` up has torch imported afterwards."""
    script = (
        "import sys\nfrom sciembed.model.export_cache import cached_export\n"
        f"cached_export({str(model)!r}, 'onnx', notify=print)\nprint('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1] == "True"


def test_a_recorded_export_is_found_without_loading_the_model(tiny_model_folder, tmp_path):
    model = shutil.copytree(tiny_model_folder, tmp_path / "model")
    calls = []
    made = cached_export(model, "onnx", notify=lambda _: None, exporters=quick_exporters(calls))
    assert list((model / "exports" / "by-source").iterdir()) and len(calls) == 1
    assert not imports_torch_to_find(model)  # found by its record: no model load
    config = model / "sciembed.json"
    config.write_text(config.read_text() + " ")
    assert imports_torch_to_find(model)  # changed files: a new key, so the full check (which loads the model)
    assert cached_export(model, "onnx", exporters=quick_exporters(calls)) == made and len(calls) == 1


def test_a_stale_record_is_ignored(tiny_model_folder, tmp_path):
    model = shutil.copytree(tiny_model_folder, tmp_path / "model")
    calls = []
    made = cached_export(model, "onnx", notify=lambda _: None, exporters=quick_exporters(calls))
    shutil.rmtree(made)  # the export was deleted by hand; the record still names it
    again = cached_export(model, "onnx", notify=lambda _: None, exporters=quick_exporters(calls))
    assert again == made and made.is_dir() and len(calls) == 2
