"""sentence-transformers loads sciembed folders (base: same pooling and normalisation) and, through
``sciembed.integrations.sentence_transformers``, every adapter: the same vectors as sciembed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import PAPERS, make_tiny_model
from sentence_transformers import SentenceTransformer

from sciembed.integrations.sentence_transformers import paper_text, sentence_transformer
from sciembed.model import load_model, save_model

FORMATS = ("proximity", "classification", "regression", "adhoc_query")


def _base_output(model, texts):
    tensors = model.collate(model.tokenize(texts))
    with torch.inference_mode():
        return model(tensors["input_ids"], tensors["attention_mask"], format=None).numpy()


@pytest.mark.parametrize(("pooling", "normalize"), [("cls", False), ("mean", True)])
def test_sentence_transformers_loads_the_base_with_our_pooling(tmp_path, pooling, normalize):
    model = make_tiny_model(pooling=pooling, normalize=normalize, formats=FORMATS)
    folder = save_model(model, tmp_path / "m")
    modules = [m["type"].rsplit(".", 1)[1] for m in json.loads((folder / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    st = SentenceTransformer(str(folder), device="cpu")
    texts = [paper_text(model, p) for p in PAPERS]
    got = st.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(got, _base_output(model, texts), atol=1e-6)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # sciembed reads its own sciembed.json first: the ST files change nothing on its side
    assert load_model(folder).fingerprint == model.fingerprint


def test_every_adapter_through_sentence_transformers(tmp_path):
    model = make_tiny_model(pooling="mean", normalize=True, formats=FORMATS)
    folder = save_model(model, tmp_path / "m")
    st = sentence_transformer(folder, device="cpu")
    texts = [paper_text(model, p) for p in PAPERS]
    np.testing.assert_allclose(st.encode_document(texts), model.encode(PAPERS, format="proximity"), atol=1e-6)
    np.testing.assert_allclose(st.encode_query(texts), model.encode(PAPERS, format="adhoc_query"), atol=1e-6)
    for fmt in FORMATS:
        np.testing.assert_allclose(st.encode(texts, task=fmt), model.encode(PAPERS, format=fmt), atol=1e-6)
    assert not np.allclose(st.encode_query(texts), st.encode_document(texts))
    assert st.get_embedding_dimension() == model.hidden_size


def test_a_model_without_adapters_is_one_module(tmp_path):
    model = make_tiny_model()
    st = sentence_transformer(model, device="cpu")
    texts = [paper_text(model, p) for p in PAPERS]
    np.testing.assert_allclose(st.encode(texts), model.encode(PAPERS), atol=1e-6)
