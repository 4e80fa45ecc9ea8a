"""Helpers and fixtures of the trainer tests (imported by the test modules; not a conftest)."""

from __future__ import annotations

import json
import random

import pytest
import torch

WORDS = (
    "graph neural network citation parsing translation speech protein retrieval summarization "
    "embedding attention corpus dialogue grammar lexicon semantic syntax transformer entity"
).split()


def write_tiny_triplets(path, n: int, seed: int = 0, papers: int = 40) -> None:
    rng = random.Random(seed)
    docs = []
    for i in range(papers):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        abstract = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))) or None
        docs.append({"corpus_id": f"p{i}", "title": title, "abstract": abstract})
    with open(path, "w") as handle:
        for _ in range(n):
            q, p, neg = rng.sample(docs, 3)
            handle.write(json.dumps({"query": q, "pos": p, "neg": neg}) + "\n")


def tiny_train_model(dropout: float = 0.1, seed: int = 0, normalize: bool = True):
    """A 2-layer BERT (hidden 32) with MiniLM's tokenizer, mean pooling (+ normalisation) like MiniLM."""
    from conftest import minilm_tokenizer
    from transformers import BertConfig, BertModel

    from sciembed.model import SciEmbedConfig, SciEmbedModel

    torch.manual_seed(seed)
    base = BertModel(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            vocab_size=30522,
            max_position_embeddings=514,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            attn_implementation="sdpa",
        ),
        add_pooling_layer=False,
    )
    config = SciEmbedConfig(pooling="mean", normalize=normalize, max_length=64, name="tiny-train")
    return SciEmbedModel(base, minilm_tokenizer(), config)


@pytest.fixture(scope="session")
def triplet_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triplets")
    write_tiny_triplets(folder / "train.jsonl", 48, seed=1)
    write_tiny_triplets(folder / "dev.jsonl", 12, seed=2)
    return folder / "train.jsonl", folder / "dev.jsonl"


@pytest.fixture(scope="session")
def tiny_init_folder(tmp_path_factory):
    """A saved tiny model folder (with dropout) to train from."""
    from sciembed.model import save_model

    folder = tmp_path_factory.mktemp("init") / "tiny"
    save_model(tiny_train_model(), folder)
    return folder


@pytest.fixture(autouse=False)
def one_thread():
    """One intra-op thread: tiny models are slower with more, and much slower on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
