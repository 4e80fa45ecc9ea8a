"""Automatic exports: `load(MODEL_FOLDER, backend=...)` exports once (atomically, under a lock), then reuses."""

import json
import os
import shutil
import threading
import time

import numpy as np
import pytest
from conftest import PAPERS

from sciembed.model import load_model
from sciembed.model.export_cache import AUTO_EXPORTS, cached_export, export_root


def fake_exporter(calls: list, delay: float = 0.0, fail: bool = False):
    """Writes a tiny ONNX export through the real exporter, counting calls (and maybe failing midway)."""

    def export(model, folder):
        from sciembed.model.export import export_onnx

        calls.append(folder)
        time.sleep(delay)
        export_onnx(model, folder, formats=["proximity"])
        if fail:
            raise RuntimeError("killed midway")
        return folder

    return export


def quick(exporter) -> dict:
    """The onnx backend's own variant (so that ``load(..., backend="onnx")`` finds the export), made fast."""
    return {"onnx": (AUTO_EXPORTS["onnx"][0], exporter)}


@pytest.fixture
def model_copy(tiny_model_folder, tmp_path):
    return shutil.copytree(tiny_model_folder, tmp_path / "model")


def test_exports_once_next_to_the_model_then_reuses(model_copy, capsys):
    pytest.importorskip("onnxruntime")
    calls = []
    folder = cached_export(model_copy, "onnx", exporters=quick(fake_exporter(calls)))
    assert "exporting" in capsys.readouterr().err  # the one notice, on stderr by default
    fingerprint = load_model(model_copy).fingerprint
    assert folder.parent == model_copy / "exports" / fingerprint[:16]
    assert json.loads((folder / "sciembed-onnx.json").read_text())["source_fingerprint"] == fingerprint
    assert cached_export(model_copy, "onnx", exporters=quick(fake_exporter(calls))) == folder
    first = load_model(model_copy, backend="onnx")  # the public path finds that export: no export of its own
    again = load_model(model_copy, backend="onnx")
    assert "exporting" not in capsys.readouterr().err
    assert len(calls) == 1 and again.folder == first.folder == folder and again.fingerprint == first.fingerprint
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".") and p.is_dir()]  # no temp left
    assert folder.stat().st_mode & 0o055 == 0o055 or os.umask(os.umask(0)) & 0o055
    reference = load_model(model_copy).encode(PAPERS, format="proximity")
    vectors = again.encode(PAPERS, format="proximity")
    assert (vectors * reference).sum(1).min() > 0.9999


def test_concurrent_loaders_export_once(model_copy):
    pytest.importorskip("onnxruntime")
    calls = []
    exporters = quick(fake_exporter(calls, delay=0.5))
    found, errors = [], []

    def load():
        try:
            found.append(cached_export(model_copy, "onnx", notify=lambda _: None, exporters=exporters))
        except Exception as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(calls) == 1 and len(set(found)) == 1


def test_a_failed_export_leaves_nothing_finished_and_is_redone(model_copy):
    pytest.importorskip("onnxruntime")
    calls = []
    with pytest.raises(RuntimeError, match="killed midway"):
        cached_export(model_copy, "onnx", notify=lambda _: None, exporters=quick(fake_exporter(calls, fail=True)))
    leftovers = [p for p in (model_copy / "exports").rglob("*") if p.is_dir() and "sciembed-onnx.json" in str(p)]
    assert not leftovers and not list((model_copy / "exports").glob("*/onnx-*"))
    redone = cached_export(model_copy, "onnx", notify=lambda _: None, exporters=quick(fake_exporter(calls)))
    assert (redone / "proximity.onnx").is_file()
    assert len(calls) == 2


def test_names_and_unwritable_places_use_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIEMBED_CACHE", str(tmp_path / "cache"))
    assert export_root("minilm") == tmp_path / "cache" / "exports"
    assert export_root(tmp_path) == tmp_path / "exports"  # a local folder we may write into
    # a folder we may not write into (root may write anywhere, so the test says which)
    assert export_root(tmp_path, can_write=lambda folder: False) == tmp_path / "cache" / "exports"
    with pytest.raises(FileNotFoundError, match="not an ONNX export"):
        load_model(tmp_path / "nothing-here", backend="onnx")
    with pytest.raises(ValueError, match="no automatic export"):
        cached_export(tmp_path, "torch")


def test_cli_embed_with_openvino_on_a_model_folder_exports_once(tiny_model_folder, tmp_path):
    """The real path: NNCF int8 export of a one-format tiny model on first use, reused by the second run."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import pyarrow.parquet as pq
    from conftest import make_tiny_model
    from typer.testing import CliRunner

    from sciembed.cli import app
    from sciembed.model import save_model

    folder = tmp_path / "one-format"
    save_model(make_tiny_model(formats=("proximity",)), folder)
    papers = tmp_path / "papers.jsonl"
    papers.write_text("\n".join(json.dumps(p) for p in PAPERS) + "\n")
    runner = CliRunner()
    outputs = []
    for run in range(2):
        parquet = tmp_path / f"emb{run}.parquet"
        result = runner.invoke(app, ["embed", str(papers), str(parquet), "-m", str(folder), "--backend", "openvino"])
        assert result.exit_code == 0, result.output
        assert ("exporting" in result.output) == (run == 0)
        outputs.append(np.stack(pq.read_table(parquet).column("embedding").to_pylist()))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    reference = load_model(folder).encode(PAPERS, format="proximity")
    assert (outputs[0] * reference).sum(1).min() > 0.99
    assert len(list((folder / "exports").glob("*/openvino-int8-*/proximity.int8.xml"))) == 1
