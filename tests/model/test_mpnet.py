"""MPNet (no SDPA in transformers: our own SDPA attention) loads and embeds as eager transformers does;
saved folders load in plain transformers without a newly initialised pooler."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import PAPERS, make_tiny_model, minilm_tokenizer, tiny_base

import sciembed
from sciembed.model import save_model
from sciembed.model.mpnet_attention import PATCHED


def _tiny_mpnet_folder(folder):
    """A tiny random MPNet as transformers saves it (with its pooler), plus a tokenizer."""
    from transformers import MPNetModel

    torch.manual_seed(0)
    config = tiny_base("mpnet").config
    MPNetModel(config).save_pretrained(str(folder))
    minilm_tokenizer().save_pretrained(str(folder))
    return folder


def _reference_mean_pooled(folder, texts):
    """Plain transformers (eager attention) + mean pooling: the independent reference."""
    from transformers import AutoModel, AutoTokenizer

    base = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    tokens = AutoTokenizer.from_pretrained(str(folder))(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = base(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


def test_tiny_mpnet_loads_with_sdpa_requested_and_embeds(tmp_path):
    folder = _tiny_mpnet_folder(tmp_path / "mpnet")
    model = sciembed.load(folder)  # attn_implementation="sdpa" by default: transformers refuses it for MPNet
    assert type(model.base).__name__ == "MPNetModel"
    assert model.base.config._attn_implementation == "eager"  # as transformers loads it ...
    assert sum(hasattr(m, PATCHED) for m in model.base.modules()) == 2  # ... with our SDPA attention
    model.config.pooling = "mean"
    texts = [f"{p['title']}" for p in PAPERS]
    vectors = model.encode(texts, batch_size=2)
    assert vectors.shape == (len(texts), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, _reference_mean_pooled(folder, texts), atol=1e-5)


def test_a_real_attention_error_is_not_hidden(tmp_path):
    folder = _tiny_mpnet_folder(tmp_path / "mpnet")
    with pytest.raises(ValueError, match="Flash Attention"):
        sciembed.load(folder, attn_implementation="flash_attention_2")


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_saved_folder_loads_in_plain_transformers_without_new_pooler(tmp_path, kind, caplog):
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    model = make_tiny_model(kind, formats=("proximity",))
    folder = save_model(model, tmp_path / kind)
    hf_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            plain = AutoModel.from_pretrained(str(folder)).eval()
    finally:
        hf_logging.disable_propagation()
    assert "newly initialized" not in caplog.text and "MISSING" not in caplog.text
    # The saved pooler is deterministic (identity + zero bias), not random: tanh of the CLS state.
    ids = torch.tensor([[101, 2023, 2003, 102]])
    with torch.no_grad():
        out = plain(input_ids=ids, attention_mask=torch.ones_like(ids))
    torch.testing.assert_close(out.pooler_output, torch.tanh(out.last_hidden_state[:, 0]))
    # sciembed itself still loads without the pooler: same vectors, same fingerprint (a loaded MPNet
    # runs our SDPA attention, the in-memory one transformers' eager attention: equal up to rounding).
    again = sciembed.load(folder)
    assert again.fingerprint == model.fingerprint
    if kind == "mpnet":
        assert any(hasattr(m, PATCHED) for m in again.base.modules())
        np.testing.assert_allclose(again.encode(PAPERS), model.encode(PAPERS), atol=1e-6, rtol=0)
    else:
        np.testing.assert_array_equal(again.encode(PAPERS), model.encode(PAPERS))


@pytest.mark.integration
def test_real_all_mpnet_base_v2_matches_plain_transformers():
    from real_models import all_mpnet_base_v2

    folder = all_mpnet_base_v2()
    model = sciembed.load(folder)
    assert model.base.config._attn_implementation == "eager"
    assert model.config.pooling == "mean" and model.config.normalize  # from its sentence-transformers files
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]
    vectors = model.encode(texts)
    assert vectors.shape == (3, 768)
    reference = _reference_mean_pooled(folder, texts)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.6 > unrelated
    # the packed forward (the GPU default) with the real relative position bias, on texts past 128 tokens
    from sciembed import EncodeOptions

    long = [f"{p['title']}. {p['abstract']} " * 3 for p in PAPERS] + texts
    assert max(len(s) for s in model.tokenize(long)) > 256
    packed = model.encode(long, options=EncodeOptions(packed=True, batch_size=4))
    np.testing.assert_allclose(packed, model.encode(long, options=EncodeOptions(packed=False)), atol=1e-5)
