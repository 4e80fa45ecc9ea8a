"""Shared fixtures: tiny random encoders (seconds to build) and paths to the real shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing")
    return path


def minilm_tokenizer():
    from transformers import AutoTokenizer

    from sciembed.model.default_model import minilm_path

    return AutoTokenizer.from_pretrained(str(minilm_path(verify=False)))


def tiny_base(kind: str = "bert", seed: int = 0, hidden: int = 32, layers: int = 2):
    """A randomly initialised BERT or MPNet encoder with the MiniLM (bert-base-uncased) vocabulary."""
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(seed)
    common = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=30522,
        max_position_embeddings=514,
    )
    if kind == "bert":
        return BertModel(BertConfig(**common), add_pooling_layer=False).eval()
    if kind == "mpnet":
        return MPNetModel(MPNetConfig(**common), add_pooling_layer=False).eval()
    raise ValueError(kind)


def make_tiny_model(kind: str = "bert", seed: int = 0, pooling: str = "cls", formats: tuple[str, ...] = (), **config):
    from sciembed.model import BottleneckConfig, SciEmbedConfig, SciEmbedModel

    model = SciEmbedModel(
        tiny_base(kind, seed), minilm_tokenizer(), SciEmbedConfig(pooling=pooling, name="tiny", **config)
    )
    for index, fmt in enumerate(formats):
        torch.manual_seed(seed + 100 + index)
        stack = model.add_adapter(fmt, BottleneckConfig(reduction_factor=4))
        for param in stack.parameters():  # non-trivial adapters so that formats really differ
            torch.nn.init.normal_(param, std=0.2)
    return model.eval()


@pytest.fixture(scope="session")
def tokenizer():
    return minilm_tokenizer()


@pytest.fixture
def tiny_model():
    return make_tiny_model()


@pytest.fixture
def tiny_adapter_model():
    return make_tiny_model(formats=("proximity", "classification", "regression", "adhoc_query"))


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """A saved sciembed model folder with four adapters (for CLI and subprocess tests)."""
    from sciembed.model import save_model

    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model(make_tiny_model(formats=("proximity", "classification", "regression", "adhoc_query")), folder)
    return folder


PAPERS = [
    {
        "paper_id": "p1",
        "title": "Attention is all you need",
        "abstract": "We propose the Transformer, based on attention.",
    },
    {"paper_id": "p2", "title": "BERT: pre-training of deep bidirectional transformers", "abstract": None},
    {"paper_id": "p3", "title": "A short one", "abstract": "Graph neural networks for citation recommendation " * 20},
    {"paper_id": "p4", "title": "", "abstract": "Only an abstract here, about protein folding."},
    {"paper_id": "p5", "title": "Convolutional networks for images", "abstract": "We train deep convolutional nets."},
]


# PAPERS six times over, with distinct ids: enough documents for several batches of mixed lengths
MANY_PAPERS = [dict(p, paper_id=f"{p['paper_id']}-{i}") for i in range(6) for p in PAPERS]


def cosines(a, b):
    """Per-row cosine similarity of two (rows, dim) arrays."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture
def papers():
    return [dict(p) for p in PAPERS]


class RecordingEncoder:
    """Wraps an encoder without touching it: records the size of each ``encode`` call and, with
    ``fail_on=N``, raises ``error`` on the N-th call (a job killed mid-way). Everything else is the
    wrapped encoder's. An embedding job's numerics probe (``sciembed.embed.numerics``) is passed
    through uncounted: ``calls`` are the job's chunks."""

    def __init__(self, inner, fail_on: int | None = None, error: BaseException | None = None):
        self.inner = inner
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.error = error or RuntimeError("killed")

    def encode(self, papers, *args, **kwargs):
        from sciembed.embed.numerics import PROBE_PAPERS

        if tuple(papers) == PROBE_PAPERS:
            return self.inner.encode(papers, *args, **kwargs)
        self.calls.append(len(papers))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise self.error
        return self.inner.encode(papers, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)
