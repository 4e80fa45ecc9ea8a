"""sciembed's adapters compute what AdapterHub's ``adapters`` library computes on real checkpoints.

The expected vectors come from ``scripts/make_adapterhub_fixture.sh`` (adapters 1.3.0 in an isolated
venv) on a BERT-base whose weights follow a deterministic rule (``adapterhub_init.py``), so no
400 MB base model needs to be stored.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import minilm_tokenizer, shared_file

from sciembed.model import SciEmbedConfig, SciEmbedModel, load_adapter

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "adapterhub_parity.json"


@pytest.fixture(scope="module")
def fixture():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def reference_model(fixture):
    from adapterhub_init import deterministic_bert_state
    from transformers import BertConfig, BertModel

    config = BertConfig(**fixture["bert_config"], attn_implementation=fixture["attn_implementation"])
    base = BertModel(config, add_pooling_layer=False)
    state = {
        k: torch.from_numpy(v) for k, v in deterministic_bert_state(fixture["bert_config"], fixture["seed"]).items()
    }
    missing, unexpected = base.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    model = SciEmbedModel(base.eval(), minilm_tokenizer(), SciEmbedConfig(pooling="cls"))
    return model.eval()


@pytest.mark.parametrize("case", ["none", "[CLF]", "[QRY]"])
def test_embeddings_equal_adapterhub(fixture, reference_model, case):
    model = reference_model
    formats = {"[CLF]": "classification", "[QRY]": "adhoc_query"}
    if case != "none":
        folder = next(a["folder"] for a in fixture["adapters"] if a["name"] == case)
        load_adapter(model, formats[case], shared_file(f"adapterhub-reference/{folder}"))
    input_ids = torch.tensor(fixture["input_ids"])
    mask = torch.tensor(fixture["attention_mask"])
    expected = fixture["cases"][case]
    with torch.inference_mode():
        for pooling in ("cls", "mean"):
            model.config.pooling = pooling
            got = model(input_ids, mask, format=formats.get(case)).numpy()
            diff = np.abs(got - np.asarray(expected[pooling], dtype=np.float32)).max()
            assert diff <= 1e-5, f"{case} {pooling}: max |diff| {diff}"
    model.config.pooling = "cls"
