"""``make demo``: embed real papers with the default model and show nearest neighbours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Paper, load_papers
from .model import SciEmbedModel

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PAPERS = REPO_ROOT.parent / "shared" / "data" / "acl" / "scisummnet-papers.jsonl"
SAMPLE_PAPERS = REPO_ROOT / "data" / "sample" / "scisummnet-sample.jsonl"
DEMO_QUERIES = 3


def demo_papers(limit: int | None = None) -> tuple[Path, list[Paper]]:
    """Real ACL papers from ../shared/data, or the small sample shipped in the repo."""
    path = SHARED_PAPERS if SHARED_PAPERS.is_file() else SAMPLE_PAPERS
    papers = [p for p in load_papers(path, id_field="acl_id") if p.abstract]
    return path, papers[:limit] if limit else papers


def nearest_neighbours(vectors: np.ndarray, query: int, k: int) -> list[tuple[int, float]]:
    """Top-k by cosine similarity, the query itself excluded."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    scores = unit @ unit[query]
    scores[query] = -np.inf
    top = np.argsort(-scores)[:k]
    return [(int(i), float(scores[i])) for i in top]


def run_demo(
    model: SciEmbedModel, limit: int | None = None, k: int = 3, seed: int = 42, device: str | None = None
) -> str:
    path, papers = demo_papers(limit)
    vectors = model.encode(papers, format="proximity", device=device, show_progress=True)
    rng = np.random.default_rng(seed)
    lines = [
        f"Embedded {len(papers)} papers from {path} with {model.config.name or 'the default model'} "
        f"(dimension {vectors.shape[1]}, pooling {model.config.pooling})."
    ]
    for query in rng.choice(len(papers), size=DEMO_QUERIES, replace=False):
        lines.append("")
        lines.append(f"{papers[query].paper_id}: {papers[query].title}")
        for index, score in nearest_neighbours(vectors, int(query), k):
            lines.append(f"   {score:.3f}  {papers[index].paper_id}: {papers[index].title}")
    return "\n".join(lines)
