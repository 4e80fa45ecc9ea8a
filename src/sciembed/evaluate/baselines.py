"""Models the harness can evaluate: sciembed / Hugging Face encoders, BM25, random embeddings.

Two explicit kinds, told apart by protocol rather than by a string:

- an :class:`EmbeddingModel` (any :class:`sciembed.Encoder` through :class:`SciEmbedEvalModel`, or
  :class:`RandomModel`) embeds papers; the harness ranks and classifies with the vectors;
- a :class:`Ranker` (BM25) scores query-candidate pairs itself and serves only the task kinds it
  names in ``task_kinds``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..data import DEFAULT_TEXT_FIELDS, Paper, as_paper

BM25_NAMES = ("bm25",)
RANDOM_PREFIX = "random"
RANDOM_DIM = 384


@runtime_checkable
class EmbeddingModel(Protocol):
    """What the harness needs of a model that embeds: the text it embeds (the cache key), the adapter
    a format uses, and ``encode``."""

    name: str
    cacheable: bool

    @property
    def fingerprint(self) -> str: ...

    def info(self) -> dict[str, Any]: ...

    def texts(self, papers: Sequence[Paper | dict | str], fields: Sequence[str] | None = None) -> list[str]: ...

    def adapter_key(self, format: str) -> str: ...

    def encode(
        self, papers: Sequence[Paper | dict | str], format: str, fields: Sequence[str] | None = None
    ) -> np.ndarray: ...


@runtime_checkable
class Ranker(Protocol):
    """A model that ranks each query's candidates itself (BM25 and other lexical scorers)."""

    name: str
    task_kinds: tuple[str, ...]  # the task kinds it can run (retrieval kinds)

    @property
    def fingerprint(self) -> str: ...

    def info(self) -> dict[str, Any]: ...

    def score(
        self,
        queries: Mapping[str, Paper | str],
        docs: Mapping[str, Paper],
        candidates: Mapping[str, Sequence[str]],
        fields: Sequence[str] | None = None,
    ) -> dict[str, dict[str, float]]: ...


def supports(model: Any, task_kind: str) -> str | None:
    """None when ``model`` can run a task of this kind, else the reason it cannot."""
    if isinstance(model, Ranker) and task_kind not in model.task_kinds:
        return f"{model.name} does not support {task_kind} tasks"
    return None


def model_kind(model: Any) -> str:
    """``ranker`` or ``embedding``: how the harness uses ``model`` (for logs and reports)."""
    return "ranker" if isinstance(model, Ranker) else "embedding"


def _plain_text(papers: Sequence[Paper | dict | str], fields: Sequence[str] | None, sep: str) -> list[str]:
    fields = tuple(fields or DEFAULT_TEXT_FIELDS)
    return [as_paper(p, i).text(sep, fields) for i, p in enumerate(papers)]


class SciEmbedEvalModel:
    """A :class:`sciembed.SciEmbedModel` (sciembed folder, Hugging Face encoder, default model)."""

    cacheable = True

    def __init__(self, model: Any, name: str, device: str | None = None, batch_size: int = 32):
        self.model = model
        self.name = name
        self.device = device
        self.batch_size = batch_size

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint

    def info(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "name": self.name,
            "type": "sciembed",
            "config_name": config.name,
            "fingerprint": self.fingerprint,
            "pooling": config.pooling,
            "normalize": config.normalize,
            "max_length": config.max_length,
            "dimension": self.model.dimension,
            "formats": self.model.formats,
            "base_sha256": config.base_sha256,
        }

    def texts(self, papers, fields=None) -> list[str]:
        return self.model.texts(papers, fields)

    def adapter_key(self, format: str) -> str:
        return self.model.adapter_for_format(format) or "base"

    def encode(self, papers, format: str, fields=None) -> np.ndarray:
        return self.model.encode(papers, format=format, batch_size=self.batch_size, device=self.device, fields=fields)


class RandomModel:
    """A sanity baseline: a fixed random vector per document text (seeded by the text's hash)."""

    cacheable = False

    def __init__(self, dim: int = RANDOM_DIM, seed: int = 42, name: str = "random"):
        self.dim = dim
        self.seed = seed
        self.name = name

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"random:{self.dim}:{self.seed}".encode()).hexdigest()

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "random",
            "dimension": self.dim,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
        }

    def texts(self, papers, fields=None) -> list[str]:
        return _plain_text(papers, fields, "[SEP]")

    def adapter_key(self, format: str) -> str:
        return "base"

    def encode(self, papers, format: str, fields=None) -> np.ndarray:
        out = np.zeros((len(papers), self.dim), dtype=np.float32)
        for row, text in enumerate(self.texts(papers, fields)):
            digest = hashlib.sha256(f"{self.seed}:{text}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
            out[row] = rng.standard_normal(self.dim)
        return out


class BM25Model:
    """BM25 (``bm25s``, Lucene variant, k1 1.5, b 0.75, English stop words) over each task's candidates.

    The index of a task is the set of all its candidate documents; each query's given candidates are
    ranked by their BM25 score for the query text.
    """

    task_kinds = ("proximity", "adhoc_search")

    def __init__(self, k1: float = 1.5, b: float = 0.75, name: str = "bm25"):
        self.k1 = k1
        self.b = b
        self.name = name

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"bm25:{self.k1}:{self.b}".encode()).hexdigest()

    def info(self) -> dict[str, Any]:
        import bm25s

        return {
            "name": self.name,
            "type": "bm25",
            "k1": self.k1,
            "b": self.b,
            "bm25s": bm25s.__version__,
            "fingerprint": self.fingerprint,
        }

    def score(
        self,
        queries: Mapping[str, Paper | str],
        docs: Mapping[str, Paper],
        candidates: Mapping[str, Sequence[str]],
        fields: Sequence[str] | None = None,
    ) -> dict[str, dict[str, float]]:
        import bm25s

        doc_ids = sorted({c for cands in candidates.values() for c in cands if c in docs})
        if not doc_ids:
            return {}
        position = {d: i for i, d in enumerate(doc_ids)}
        corpus = _plain_text([docs[d] for d in doc_ids], fields, " ")
        tokens = bm25s.tokenize(corpus, stopwords="en", return_ids=False, show_progress=False)
        retriever = bm25s.BM25(k1=self.k1, b=self.b)
        retriever.index(tokens, show_progress=False)
        vocab = retriever.vocab_dict
        run: dict[str, dict[str, float]] = {}
        qids = [q for q in candidates if q in queries]
        qtexts = _plain_text([queries[q] for q in qids], fields, " ")
        qtokens = bm25s.tokenize(qtexts, stopwords="en", return_ids=False, show_progress=False)
        for qid, toks in zip(qids, qtokens, strict=True):
            known = [t for t in toks if t in vocab and t]
            scores = retriever.get_scores(known) if known else np.zeros(len(doc_ids), dtype=np.float32)
            present = [c for c in candidates[qid] if c in position]
            if present:
                run[qid] = {c: float(scores[position[c]]) for c in present}
        return run


def resolve_model(spec: Any, device: str | None = None, batch_size: int = 32, backend: str = "torch") -> Any:
    """A model for the harness from a name: ``bm25``, ``random`` (or ``random:768``), ``default``,
    ``minilm``, a sciembed / Hugging Face model folder or hub name, run by ``backend`` (``onnx`` for a
    ``sciembed export onnx`` folder; ``onnx:FOLDER`` says the same for one model); model objects pass
    through."""
    if not isinstance(spec, str):
        return spec
    low = spec.strip().lower()
    if low in BM25_NAMES:
        return BM25Model()
    if low == RANDOM_PREFIX or low.startswith(RANDOM_PREFIX + ":"):
        dim = int(low.split(":", 1)[1]) if ":" in low else RANDOM_DIM
        return RandomModel(dim=dim, name=spec)
    from .. import load

    model = load(None if low == "default" else spec, backend=backend)
    if getattr(model, "backend", "torch") != "torch":
        device = None  # other backends run where their sessions run
    return SciEmbedEvalModel(model, name=spec, device=device, batch_size=batch_size)
