"""ONNX export (one graph per format with its adapter inside) and the onnxruntime backend."""

import json

import numpy as np
import pytest
from conftest import MANY_PAPERS as MANY
from conftest import PAPERS, cosines, make_tiny_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sciembed.model import load_model  # noqa: E402
from sciembed.model.export import ONNX_CONFIG, export_onnx  # noqa: E402

FORMATS = ("proximity", "classification")


@pytest.fixture(scope="module")
def model():
    return make_tiny_model(formats=FORMATS)


@pytest.fixture(scope="module")
def fp32_folder(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "fp32")


@pytest.fixture(scope="module")
def int8_folder(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "int8", formats=["[PRX]"], int8=True)


def test_export_writes_one_graph_per_format_with_its_adapter_inside(model, fp32_folder):
    import onnx

    settings = json.loads((fp32_folder / ONNX_CONFIG).read_text())
    assert settings["graphs"] == {"proximity": "proximity.onnx", "classification": "classification.onnx"}
    assert settings["pooling"] == "cls" and settings["max_length"] == model.config.max_length
    assert (fp32_folder / "tokenizer.json").is_file()
    for fmt in FORMATS:
        graph = onnx.load(str(fp32_folder / f"{fmt}.onnx"))
        names = {init.name for init in graph.graph.initializer}
        assert any(f"adapters.{fmt}." in n for n in names)  # the adapter's weights are in the graph
        assert not any(f"adapters.{other}." in n for other in FORMATS if other != fmt for n in names)
        assert graph.opset_import[0].version >= 17
    assert not model.training  # exporting leaves the model in eval mode


def test_attention_mask_is_an_add_not_where_over_the_scores(model, fp32_folder):
    """SDPA traced with a boolean mask gives Where + IsNaN over every score tensor (a third of
    onnxruntime's CPU time); the export traces eager attention, and restores the model's setting."""
    import onnx

    graph = onnx.load(str(fp32_folder / "proximity.onnx")).graph
    assert not [node.op_type for node in graph.node if node.op_type == "IsNaN"]
    in_layers = [node.name for node in graph.node if node.op_type == "Where" and "/encoder/layer" in node.name]
    assert not in_layers  # the mask is built once (embeddings / base level), not per layer
    assert model.base.config._attn_implementation != "eager"


def test_onnx_graphs_match_pytorch_and_differ_across_formats(model, fp32_folder):
    import onnxruntime as ort

    batch = model.collate(model.tokenize(model.texts(MANY[:7])))  # padded batch of mixed lengths
    feed = {k: v.numpy() for k, v in batch.items()}
    outputs = {}
    for fmt in FORMATS:
        session = ort.InferenceSession(str(fp32_folder / f"{fmt}.onnx"), providers=["CPUExecutionProvider"])
        outputs[fmt] = session.run(None, feed)[0]
        reference = model(batch["input_ids"], batch["attention_mask"], format=fmt).detach().numpy()
        np.testing.assert_allclose(outputs[fmt], reference, atol=1e-4)
    assert np.abs(outputs["proximity"] - outputs["classification"]).max() > 1e-2


def test_onnx_backend_encode_matches_pytorch(model, fp32_folder):
    import sciembed

    encoder = load_model(fp32_folder, backend="onnx")
    assert isinstance(encoder, sciembed.Encoder) and isinstance(model, sciembed.Encoder)
    assert encoder.formats == list(FORMATS) and encoder.dimension == 32 and encoder.name
    options = sciembed.EncodeOptions(batch_size=3)
    np.testing.assert_allclose(encoder.encode(MANY, options=options), encoder.encode(MANY, batch_size=4), atol=1e-5)
    for fmt in FORMATS:
        reference = model.encode(MANY, format=fmt, batch_size=4)
        vectors = encoder.encode(MANY, format=fmt, batch_size=4)
        assert vectors.dtype == np.float32 and vectors.shape == reference.shape
        assert cosines(vectors, reference).min() > 0.9999
    with pytest.raises(ValueError, match="no 'regression' graph"):
        encoder.encode(MANY, format="regression")
    assert encoder.encode([], format="proximity").shape == (0, 32)


def test_int8_export_stays_close(model, int8_folder):
    """Dynamic int8 on a 2-layer random model: weights are N(0, 0.02) and the adapters N(0, 0.2),
    so int8 rounding moves vectors a little; measured min cosine ~0.9999, tested at 0.99 as in the issue."""
    encoder = load_model(int8_folder, backend="onnx")
    assert encoder.quantization and encoder.formats == ["proximity"]
    reference = model.encode(MANY, format="proximity")
    vectors = encoder.encode(MANY, format="proximity")
    assert cosines(vectors, reference).min() > 0.99
    assert encoder.dtype == "onnx-int8" and len(encoder.fingerprint) == 64


def test_cli_export_and_embed_with_onnx_backend(tiny_model_folder, tmp_path):
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from sciembed.cli import app

    runner = CliRunner()
    out = tmp_path / "onnx"
    result = runner.invoke(app, ["export", "onnx", str(tiny_model_folder), str(out), "--format", "proximity"])
    assert result.exit_code == 0, result.output
    assert (out / "proximity.onnx").is_file()
    papers = tmp_path / "papers.jsonl"
    papers.write_text("\n".join(json.dumps(p) for p in PAPERS) + "\n")
    parquet = tmp_path / "emb.parquet"
    result = runner.invoke(app, ["embed", str(papers), str(parquet), "-m", str(out), "--backend", "onnx"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(parquet)
    vectors = np.stack(table.column("embedding").to_pylist())
    reference = load_model(tiny_model_folder).encode(PAPERS, format="proximity")
    assert cosines(vectors, reference).min() > 0.9999
    # `-m onnx:DIR` is the short spelling of `--backend onnx -m DIR`, in embed as in evaluate
    again = tmp_path / "again.parquet"
    result = runner.invoke(app, ["embed", str(papers), str(again), "-m", f"onnx:{out}"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.stack(pq.read_table(again).column("embedding").to_pylist()), vectors)
    from sciembed.evaluate import resolve_model

    for spec, backend in ((str(out), "onnx"), (f"onnx:{out}", "torch")):
        wrapped = resolve_model(spec, device="cuda", backend=backend)  # the ONNX backend ignores the device
        assert wrapped.model.backend == "onnx" and wrapped.device is None


def test_int8_can_keep_ffn_output_and_adapters_in_fp32(model, tmp_path):
    import onnx

    folder = export_onnx(model, tmp_path / "keep", formats=["[PRX]"], int8=True, keep_fp32=["ffn_out", "adapters"])
    nodes = onnx.load(str(folder / "proximity.int8.onnx")).graph.node
    quantised = [n.name for n in nodes if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    layers = model.base.config.num_hidden_layers
    assert len(quantised) == 5 * layers  # q, k, v, attention output, FFN input per layer
    assert not [n for n in quantised if "adapter" in n or ("/output/dense/" in n and "/attention/" not in n)]
    assert json.loads((folder / ONNX_CONFIG).read_text())["kept_fp32"] == ["adapters", "ffn_out"]
    encoder = load_model(folder, backend="onnx")
    reference = model.encode(MANY, "proximity")
    assert cosines(encoder.encode(MANY, "proximity"), reference).min() > 0.99
    with pytest.raises(ValueError, match="keep_fp32"):
        export_onnx(model, tmp_path / "bad", formats=["[PRX]"], int8=True, keep_fp32=["everything"])
    every = export_onnx(model, tmp_path / "all", formats=["[PRX]"], int8=True, keep_fp32=())
    nodes = onnx.load(str(every / "proximity.int8.onnx")).graph.node
    assert len([n for n in nodes if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]) == 8 * layers


def test_int8_default_keeps_the_sensitive_gemms(int8_folder):
    assert json.loads((int8_folder / ONNX_CONFIG).read_text())["kept_fp32"] == ["adapters", "ffn_out"]


def test_static_int8_is_calibrated_qdq_and_stays_close(model, tmp_path):
    import onnx

    folder = export_onnx(model, tmp_path / "static", formats=["proximity"], int8="static", calibration_size=32)
    settings = json.loads((folder / ONNX_CONFIG).read_text())
    assert settings["quantization"] == "int8-static-per-channel"
    kinds = [node.op_type for node in onnx.load(str(folder / "proximity.int8.onnx")).graph.node]
    assert kinds.count("QuantizeLinear") >= 4 and "DynamicQuantizeLinear" not in kinds  # scales fixed at export
    encoder = load_model(folder, backend="onnx")
    assert cosines(encoder.encode(MANY, format="proximity"), model.encode(MANY, format="proximity")).min() > 0.99
    with pytest.raises(ValueError, match="int8 must be"):
        export_onnx(model, tmp_path / "bad", int8="weird")


def test_large_calls_run_one_batch_per_core_with_the_same_vectors(int8_folder):
    """Streams: with at least STREAM_MIN_BATCHES batches per core, each core runs its own batch on a
    one-thread session; the vectors equal those of the same batches run one at a time. (Dynamic int8
    scales its activations per batch, so the same batches are compared, not one big batch.)"""
    from sciembed.engine.backends.onnx import STREAM_MIN_BATCHES
    from sciembed.model.onnx_backend import load_onnx

    papers = MANY * 2
    batch_size = max(1, len(papers) // (STREAM_MIN_BATCHES * 2))
    streamed, single = load_onnx(int8_folder, threads=2), load_onnx(int8_folder, threads=1)
    vectors = streamed.encode(papers, format="proximity", batch_size=batch_size)
    assert list(streamed.__dict__.get("_sessions_by_threads", {})) == [("proximity", 1)]  # the streams ran
    one_at_a_time = single.encode(papers, format="proximity", batch_size=batch_size)
    assert "_sessions_by_threads" not in single.__dict__  # one core: no streams
    np.testing.assert_allclose(vectors, one_at_a_time, atol=1e-6)
    small = streamed.encode(papers[:3], format="proximity", batch_size=batch_size)  # too few batches: no streams
    np.testing.assert_allclose(small, single.encode(papers[:3], format="proximity", batch_size=batch_size), atol=1e-5)
