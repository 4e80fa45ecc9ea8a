"""sciembed's adapters inside sentence-transformers (>= 6): one module per format behind ST's ``Router``.

    from sciembed.integrations.sentence_transformers import sentence_transformer

    st = sentence_transformer("models/sciembed-minilm")       # a folder, hub name or loaded model
    docs = st.encode_document(["BERT[SEP]We introduce a new language model ..."])  # proximity adapter
    queries = st.encode_query(["contrastive learning for citation graphs"])        # adhoc_query adapter
    labels = st.encode(texts, task="classification")                               # any format by name

Vectors equal ``sciembed.load(...).encode(texts, format=...)``. A paper is one string: title and
abstract joined by the tokenizer's separator (``paper_text``). Without this module,
``SentenceTransformer(folder)`` loads the base only (sciembed writes its pooling and normalisation
files), which equals sciembed's base output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import InputModule, Router

from ..data import Paper
from ..model import SciEmbedModel, load_model

# ST's task names (encode_query / encode_document) and the format each one means.
TASK_FORMATS = {"query": "adhoc_query", "document": "proximity"}


class SciEmbedFormat(InputModule):
    """Tokenise, encode and pool with one format's adapter (None: the base) of a sciembed model."""

    config_keys = ["format"]

    def __init__(self, model: SciEmbedModel, format: str | None):
        super().__init__()
        self.model = model
        self.format = format
        self.tokenizer = model.tokenizer

    def preprocess(self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        texts = [(prompt or "") + text for text in inputs]
        return self.model.collate(self.model.tokenize(texts))

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features["sentence_embedding"] = self.model(
            features["input_ids"], features["attention_mask"], format=self.format
        )
        return features

    def get_embedding_dimension(self) -> int:
        return self.model.hidden_size

    get_sentence_embedding_dimension = get_embedding_dimension

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "a sciembed sentence-transformers model is built from its sciembed folder: save that with "
            "sciembed.save_model and rebuild with sentence_transformer(folder)"
        )


def sentence_transformer(
    model: SciEmbedModel | str | Path | None = None, device: str | None = None, **load_kwargs: Any
) -> SentenceTransformer:
    """A ``SentenceTransformer`` computing sciembed's vectors: a route per adapter format (plus ST's
    ``query`` -> adhoc_query and ``document`` -> proximity), or the base alone for a model without
    adapters."""
    encoder = model if isinstance(model, SciEmbedModel) else load_model(model, **load_kwargs)
    encoder.eval()
    if not encoder.formats:
        modules: list[Any] = [SciEmbedFormat(encoder, None)]
    else:
        routes = {fmt: [SciEmbedFormat(encoder, fmt)] for fmt in encoder.formats}
        for task, fmt in TASK_FORMATS.items():
            if fmt in routes:
                routes[task] = routes[fmt]
        default = "proximity" if "proximity" in routes else encoder.formats[0]
        modules = [Router(routes, default_route=default, allow_empty_key=True)]
    st = SentenceTransformer(modules=modules, device=device or str(encoder.device), similarity_fn_name="cosine")
    st.max_seq_length = encoder.config.max_length
    return st


def paper_text(model: SciEmbedModel, paper: Paper | dict | str) -> str:
    """The one string sciembed embeds for a paper (title [SEP] abstract, as configured)."""
    return model.texts([paper])[0]
