"""Run any sciembed model in MTEB (>= 2), with the adapter format each input type calls for.

    import mteb
    from sciembed.integrations.mteb import SciEmbedMTEB

    model = SciEmbedMTEB("models/sciembed-minilm")       # a folder, hub name or loaded model
    results = mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]), cache=None)

Queries get ``adhoc_query`` and documents ``proximity`` (retrieval, reranking); classification and
clustering get ``classification``; regression gets ``regression``; the rest (STS, pair
classification, ...: similarity of two texts) ``proximity``. A model without adapters serves every
format with its base. Corpus rows with a title are embedded as title [SEP] body, the way sciembed
embeds papers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder
from mteb.types import PromptType

from ..model import SciEmbedModel, canonical_format, load_model

# MTEB task type -> sciembed format (input types not listed here: proximity).
TASK_TYPE_FORMATS = {
    "Classification": "classification",
    "MultilabelClassification": "classification",
    "Clustering": "classification",
    "Regression": "regression",
}
QUERY_FORMAT = "adhoc_query"
DOCUMENT_FORMAT = "proximity"


def format_for(task_type: str, prompt_type: PromptType | str | None, table: Mapping[str, str] | None = None) -> str:
    """The sciembed format for one MTEB encode call."""
    kind = getattr(prompt_type, "value", prompt_type)
    if kind == "query":
        return QUERY_FORMAT
    if kind == "document":
        return DOCUMENT_FORMAT
    return canonical_format({**TASK_TYPE_FORMATS, **(table or {})}.get(task_type, DOCUMENT_FORMAT))


class SciEmbedMTEB(AbsEncoder):
    """An MTEB encoder around a sciembed model; ``formats`` overrides the task type -> format table."""

    def __init__(
        self,
        model: SciEmbedModel | str | Path | None = None,
        revision: str | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        formats: Mapping[str, str] | None = None,
        **load_kwargs: Any,
    ) -> None:
        self.model = model if isinstance(model, SciEmbedModel) else load_model(model, **load_kwargs)
        self.device = device
        self.batch_size = batch_size
        self.formats = dict(formats or {})
        self.calls: list[tuple[str, str | None, str]] = []  # (task name, prompt type, format): what ran
        name = self.model.config.name or "model"
        self.mteb_model_meta = ModelMeta.create_empty(
            overwrites=dict(
                name=name if "/" in name else f"sciembed/{name}",
                revision=revision or self.model.fingerprint[:12],
                embed_dim=self.model.hidden_size,
                max_tokens=self.model.config.max_length,
                similarity_fn_name="cosine",
                framework=["PyTorch"],
                loader=type(self),
            )
        )

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        papers: list[dict[str, str] | str] = []
        for batch in inputs:
            titles = batch.get("title")
            bodies = batch.get("body")
            for row, text in enumerate(batch["text"]):
                if titles is not None and bodies is not None:  # a corpus document with a title
                    papers.append({"paper_id": str(len(papers)), "title": titles[row], "abstract": bodies[row]})
                else:
                    papers.append(text)
        fmt = format_for(task_metadata.type, prompt_type, self.formats)
        self.calls.append((task_metadata.name, getattr(prompt_type, "value", prompt_type), fmt))
        return self.model.encode(papers, format=fmt, batch_size=self.batch_size, device=self.device)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)
