"""OpenVINO export (NNCF int8, calibrated on real abstracts) and the OpenVINO backend, on a tiny model."""

import gzip
import json

import numpy as np
import pytest
from conftest import MANY_PAPERS as MANY
from conftest import PAPERS, cosines, make_tiny_model

pytest.importorskip("openvino")
pytest.importorskip("nncf")
pytest.importorskip("onnx")

from sciembed.model import load_model  # noqa: E402
from sciembed.model.calibrate import CALIBRATION_FILE, calibration_papers  # noqa: E402
from sciembed.model.export_openvino import OPENVINO_CONFIG, export_openvino  # noqa: E402

FORMATS = ("proximity", "classification")


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(formats=FORMATS)


@pytest.fixture(scope="module")
def int8_folder(model, tmp_path_factory):
    # one format and one batch of 32 real abstracts: enough for a 2-layer model, and fast
    return export_openvino(model, tmp_path_factory.mktemp("ov") / "int8", formats=["[PRX]"], calibration_size=32)


def test_int8_export_has_one_quantised_graph_per_format(model, int8_folder):
    import openvino as ov

    settings = json.loads((int8_folder / OPENVINO_CONFIG).read_text())
    assert settings["graphs"] == {"proximity": "proximity.int8.xml"}
    assert settings["quantization"] == "int8-nncf-ptq" and settings["calibration"]["papers"] == 32
    assert settings["source_fingerprint"] == model.fingerprint and (int8_folder / "tokenizer.json").is_file()
    graph = ov.Core().read_model(str(int8_folder / "proximity.int8.xml"))
    kinds = [op.get_type_name() for op in graph.get_ops()]
    assert kinds.count("FakeQuantize") >= 8  # int8 activations and weights around the GEMMs
    assert (int8_folder / "proximity.int8.bin").is_file()
    assert not model.training


def test_openvino_backend_int8_stays_close(model, int8_folder):
    import sciembed

    encoder = load_model(int8_folder, backend="openvino")
    assert isinstance(encoder, sciembed.Encoder) and encoder.backend == "openvino"
    assert encoder.formats == ["proximity"] and encoder.dimension == 32 and encoder.dtype == "openvino-int8"
    reference = model.encode(MANY, format="proximity", batch_size=4)
    vectors = encoder.encode(MANY, format="proximity", batch_size=4)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert cosines(vectors, reference).min() > 0.99  # measured ~0.99996
    np.testing.assert_allclose(encoder.encode(MANY, batch_size=7), vectors, atol=1e-4)
    with pytest.raises(ValueError, match="no 'classification' graph"):
        encoder.encode(MANY, format="classification")
    with pytest.raises(ValueError, match="runs on CPU"):
        encoder.encode(MANY, device="cuda")
    assert len(encoder.fingerprint) == 64


def test_openvino_runs_an_onnx_export_in_fp32_with_each_format_its_adapter(model, tmp_path):
    from sciembed.model.export import export_onnx

    folder = export_onnx(model, tmp_path / "onnx")
    encoder = load_model(folder, backend="openvino")
    assert encoder.dtype == "openvino-fp32" and encoder.formats == list(FORMATS)
    vectors = {}
    for fmt in FORMATS:
        vectors[fmt] = encoder.encode(MANY, format=fmt)
        assert cosines(vectors[fmt], model.encode(MANY, format=fmt)).min() > 0.9999
    assert cosines(vectors["proximity"], vectors["classification"]).mean() < 0.99
    assert load_model(folder, backend="onnx").fingerprint == encoder.fingerprint  # same files and settings


def test_calibration_papers_are_real_abstracts_and_bad_lines_are_named(tmp_path):
    shipped = calibration_papers()
    assert len(shipped) == 256 and all(p["title"] and len(p["abstract"]) > 200 for p in shipped)
    with gzip.open(CALIBRATION_FILE, "rt") as handle:
        assert sum(1 for _ in handle) == 256
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PAPERS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        calibration_papers(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"paper_id": "x", "title": "", "abstract": None}) + "\n")
    with pytest.raises(ValueError, match=r"empty.jsonl:1: a calibration paper needs"):
        calibration_papers(empty)
    assert len(calibration_papers(bad, limit=1)) == 1
