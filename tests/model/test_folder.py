import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from sciembed.model import default_model as default_model_module
from sciembed.model import load_model, save_model
from sciembed.model.adapter_io import write_adapter_folder
from sciembed.model.hashing import sha256_file

FORMATS = ("proximity", "classification", "regression", "adhoc_query")


def test_save_and_load_round_trip(tmp_path, tiny_adapter_model, papers):
    folder = save_model(tiny_adapter_model, tmp_path / "m")
    config = json.loads((folder / "sciembed.json").read_text())
    assert config["formats"] == list(FORMATS) and config["pooling"] == "cls"
    assert config["base_sha256"] == sha256_file(folder / "model.safetensors")
    for fmt in FORMATS:
        assert (folder / "adapters" / fmt / "adapter_config.json").is_file()
        assert (folder / "adapters" / fmt / "adapter.safetensors").is_file()
    loaded = load_model(folder)
    assert loaded.formats == list(FORMATS)
    for fmt in FORMATS:
        np.testing.assert_allclose(
            loaded.encode(papers, format=fmt), tiny_adapter_model.encode(papers, format=fmt), atol=1e-6
        )
    assert loaded.fingerprint == tiny_adapter_model.fingerprint


def test_base_loads_with_automodel_alone(tmp_path, tiny_adapter_model):
    from transformers import AutoModel

    folder = save_model(tiny_adapter_model, tmp_path / "m")
    base = AutoModel.from_pretrained(str(folder))
    for key, value in tiny_adapter_model.base.state_dict().items():
        assert torch.equal(base.state_dict()[key], value), key


def test_fp16_storage_halves_size_and_keeps_embeddings_close(tmp_path, tiny_adapter_model, papers):
    full = save_model(tiny_adapter_model, tmp_path / "fp32")
    half = save_model(tiny_adapter_model, tmp_path / "fp16", dtype="fp16")
    assert (half / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    a = load_model(half).encode(papers)
    b = tiny_adapter_model.encode(papers)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999


def _published_layout(root, model):
    """SPECTER2's published layout: specter2_base/ plus one AdapterHub-style folder per format."""
    model.base.save_pretrained(str(root / "specter2_base"))
    model.tokenizer.save_pretrained(str(root / "specter2_base"))
    names = {
        "proximity": "specter2",
        "classification": "specter2_classification",
        "regression": "specter2_regression",
        "adhoc_query": "specter2_adhoc_query",
    }
    for fmt, name in names.items():
        write_adapter_folder(model.adapters[fmt], root / name, f"[{fmt[:3].upper()}]", "bert", model.hidden_size)
    return names


def test_published_layout_from_local_paths(tmp_path, tiny_adapter_model, papers):
    names = _published_layout(tmp_path, tiny_adapter_model)
    whole = load_model(tmp_path)
    assert sorted(whole.formats) == sorted(FORMATS)
    explicit = load_model(
        tmp_path / "specter2_base",
        adapters={"[PRX]": tmp_path / names["proximity"], "[CLF]": tmp_path / names["classification"]},
    )
    assert explicit.formats == ["proximity", "classification"]
    np.testing.assert_allclose(
        explicit.encode(papers, format="classification"),
        tiny_adapter_model.encode(papers, format="classification"),
        atol=1e-6,
    )


def test_published_layout_from_hub_names(tmp_path, tiny_adapter_model, papers, monkeypatch):
    names = _published_layout(tmp_path, tiny_adapter_model)
    repos = {
        "allenai/specter2_base": tmp_path / "specter2_base",
        **{f"allenai/{name}": tmp_path / name for name in names.values()},
    }
    calls = []

    def fake_snapshot_download(repo_id, **_):
        calls.append(repo_id)
        return str(repos[repo_id])

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = load_model("allenai/specter2")
    assert sorted(calls) == sorted(repos)
    assert sorted(model.formats) == sorted(FORMATS)
    np.testing.assert_allclose(
        model.encode(papers, format="adhoc_query"), tiny_adapter_model.encode(papers, format="adhoc_query"), atol=1e-6
    )


def test_adapterhub_checkpoint_with_pytorch_bin(tmp_path, tiny_adapter_model, papers):
    """An AdapterHub folder: adapter_config.json + pytorch_adapter.bin with bert.encoder... keys."""
    stack = tiny_adapter_model.adapters["classification"]
    folder = tmp_path / "hub_adapter"
    folder.mkdir()
    state = {
        f"bert.encoder.layer.{k.split('.')[1]}.output.adapters.[CLF].{k.split('.', 2)[2]}": v
        for k, v in stack.state_dict().items()
    }
    state["heads.[CLF].1.weight"] = torch.zeros(3, 32)  # heads are ignored
    torch.save(state, folder / "pytorch_adapter.bin")
    (folder / "adapter_config.json").write_text(
        json.dumps({"config": {**stack.config.to_dict(), "mh_adapter": False}, "name": "[CLF]", "model_type": "bert"})
    )
    base_folder = tmp_path / "base"
    tiny_adapter_model.base.save_pretrained(str(base_folder))
    tiny_adapter_model.tokenizer.save_pretrained(str(base_folder))
    model = load_model(base_folder, adapters={"classification": folder})
    np.testing.assert_allclose(
        model.encode(papers, format="classification"),
        tiny_adapter_model.encode(papers, format="classification"),
        atol=1e-6,
    )


def test_bad_adapter_and_folder_errors(tmp_path, tiny_model):
    base_folder = tmp_path / "base"
    tiny_model.base.save_pretrained(str(base_folder))
    tiny_model.tokenizer.save_pretrained(str(base_folder))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text(json.dumps({"config": {"mh_adapter": True}}))
    with pytest.raises(ValueError, match="mh_adapter"):
        load_model(base_folder, adapters={"proximity": bad})
    (bad / "adapter_config.json").write_text(json.dumps({"config": "pfeiffer"}))
    with pytest.raises(ValueError, match="adapter, not a model"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="no adapter weights"):
        load_model(base_folder, adapters={"proximity": bad})
    with pytest.raises(FileNotFoundError, match="neither a local folder nor a reachable"):
        load_model(tmp_path / "does-not-exist")


def test_adapter_of_wrong_size_is_rejected(tmp_path, papers):
    small = make_tiny_model(formats=("proximity",))
    write_adapter_folder(small.adapters["proximity"], tmp_path / "a", "[PRX]", "bert", 32)
    other = make_tiny_model(kind="bert", seed=1)
    other.config.name = "x"
    big_folder = tmp_path / "big"
    from conftest import tiny_base

    base = tiny_base(hidden=64)
    base.save_pretrained(str(big_folder))
    other.tokenizer.save_pretrained(str(big_folder))
    with pytest.raises(ValueError, match="has shape"):
        load_model(big_folder, adapters={"proximity": tmp_path / "a"})


def test_registry_weights_are_checked_against_their_sha256():
    from sciembed.model import bases

    weights = default_model_module.minilm_path(verify=False) / "model.safetensors"
    bases._verify(weights, bases.MINILM.sha256)  # the installed package passes
    with pytest.raises(ValueError, match="does not match the expected"):
        bases._verify(weights, "0" * 64)


@pytest.mark.integration
def test_minilm_loads_with_mean_pooling_and_normalisation(papers):
    model = load_model("minilm")
    assert model.config.name == "all-MiniLM-L6-v2"
    assert model.config.pooling == "mean" and model.config.normalize
    assert model.config.base_sha256 == default_model_module.MINILM_SHA256
    vectors = model.encode(papers[:3])
    assert vectors.shape == (3, 384)
    # a paper is closer to a paraphrase of itself than to an unrelated paper
    a, b, c = model.encode(
        [
            "Transformers for machine translation",
            "Neural machine translation with attention",
            "Protein structure prediction in biology",
        ]
    )
    assert a @ b > a @ c


def test_older_adapter_folders_still_load(tmp_path, tiny_adapter_model, papers):
    """Folders written before the AdapterHub file names (models/sciembed-minilm is one) load unchanged."""
    folder = save_model(tiny_adapter_model, tmp_path / "m")
    for fmt in FORMATS:
        adapter = folder / "adapters" / fmt
        (adapter / "adapter.safetensors").rename(adapter / "adapter_model.safetensors")
        (adapter / "pytorch_adapter.bin").unlink()
        config = json.loads((adapter / "adapter_config.json").read_text())
        config["config"]["architecture"] = "bottleneck"
        (adapter / "adapter_config.json").write_text(json.dumps(config))
    loaded = load_model(folder)
    for fmt in FORMATS:
        np.testing.assert_array_equal(loaded.encode(papers, format=fmt), tiny_adapter_model.encode(papers, format=fmt))
