"""How far two embeddings of the same papers differ: a new model version, or local vectors against a
service's. Per-paper cosine after an orthogonal alignment (Procrustes: two models can agree up to a
rotation), and overlap of each paper's k nearest neighbours, which needs no alignment at all."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .metadata import read_metadata
from .writer import read_embeddings

# Neighbour overlap is computed for at most this many papers (a seeded sample), against all papers.
MAX_NEIGHBOUR_QUERIES = 5000
BLOCK_ROWS = 1024


@dataclass(frozen=True)
class Comparison:
    """``cosine``: per common paper, B aligned onto A (None when the dimensions differ);
    ``cosine_unaligned``: the same without alignment (None when the dimensions differ);
    ``overlap``: per sampled paper, the fraction of its k nearest neighbours (cosine) found in both."""

    ids: list[str]
    only_a: int
    only_b: int
    dimensions: tuple[int, int]
    k: int
    cosine: np.ndarray | None
    cosine_unaligned: np.ndarray | None
    overlap: np.ndarray
    metadata: tuple[dict[str, Any] | None, dict[str, Any] | None] = field(default=(None, None))

    def summary(self) -> dict[str, Any]:
        def stats(values: np.ndarray | None) -> dict[str, float] | None:
            if values is None:
                return None
            return {
                "mean": float(values.mean()),
                "median": float(np.median(values)),
                "p05": float(np.quantile(values, 0.05)),
                "min": float(values.min()),
            }

        return {
            "papers": len(self.ids),
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "dimensions": list(self.dimensions),
            "k": self.k,
            "cosine_aligned": stats(self.cosine),
            "cosine_unaligned": stats(self.cosine_unaligned),
            "knn_overlap": stats(self.overlap),
            "knn_papers": int(len(self.overlap)),
            "metadata_a": self.metadata[0],
            "metadata_b": self.metadata[1],
        }


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def procrustes_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal R minimising ||source @ R - target|| (Frobenius)."""
    u, _, vt = np.linalg.svd(source.astype(np.float64).T @ target.astype(np.float64))
    return (u @ vt).astype(np.float32)


def nearest_neighbours(unit: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest rows (cosine, self excluded) of ``unit`` for each query row index."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), BLOCK_ROWS):
        rows = queries[start : start + BLOCK_ROWS]
        sims = unit[rows] @ unit.T
        sims[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out[start : start + len(rows)] = top
    return out


def compare_vectors(
    ids_a: list[str], a: np.ndarray, ids_b: list[str], b: np.ndarray, k: int = 10, seed: int = 0
) -> Comparison:
    """Compare two embeddings of (mostly) the same papers, matched by id."""
    position_b = {pid: i for i, pid in enumerate(ids_b)}
    common = [(i, position_b[pid]) for i, pid in enumerate(ids_a) if pid in position_b]
    if len(common) < 2:
        raise ValueError(f"the two files share {len(common)} paper ids; at least 2 are needed to compare")
    rows_a, rows_b = (np.array(x, dtype=np.int64) for x in zip(*common, strict=True))
    ua, ub = _unit(a[rows_a]), _unit(b[rows_b])
    k = min(k, len(common) - 1)
    cosine = unaligned = None
    if ua.shape[1] == ub.shape[1]:
        unaligned = np.einsum("ij,ij->i", ua, ub)
        cosine = np.clip(np.einsum("ij,ij->i", ua, ub @ procrustes_rotation(ub, ua)), -1.0, 1.0)
    rng = np.random.default_rng(seed)
    queries = np.arange(len(common))
    if len(queries) > MAX_NEIGHBOUR_QUERIES:
        queries = np.sort(rng.choice(queries, MAX_NEIGHBOUR_QUERIES, replace=False))
    near_a, near_b = nearest_neighbours(ua, queries, k), nearest_neighbours(ub, queries, k)
    overlap = np.array([len(set(x) & set(y)) / k for x, y in zip(near_a.tolist(), near_b.tolist(), strict=True)])
    return Comparison(
        ids=[ids_a[i] for i in rows_a.tolist()],
        only_a=len(ids_a) - len(common),
        only_b=len(ids_b) - len(common),
        dimensions=(int(a.shape[1]), int(b.shape[1])),
        k=k,
        cosine=cosine,
        cosine_unaligned=unaligned,
        overlap=overlap,
    )


def compare_files(path_a: str | Path, path_b: str | Path, k: int = 10) -> Comparison:
    ids_a, a = read_embeddings(path_a)
    ids_b, b = read_embeddings(path_b)
    result = compare_vectors(ids_a, a, ids_b, b, k=k)
    meta = tuple(m.to_json() if m else None for m in (read_metadata(path_a), read_metadata(path_b)))
    return Comparison(**{**result.__dict__, "metadata": meta})


def markdown_summary(result: Comparison, name_a: str, name_b: str) -> str:
    s = result.summary()

    def row(label: str, stats: dict[str, float] | None) -> str:
        if stats is None:
            return f"| {label} | n/a (dimensions {s['dimensions'][0]} vs {s['dimensions'][1]}) | | | |"
        return f"| {label} | {stats['mean']:.4f} | {stats['median']:.4f} | {stats['p05']:.4f} | {stats['min']:.4f} |"

    def describe(meta: dict[str, Any] | None) -> str:
        if not meta:
            return "no sciembed metadata"
        return f"{meta['model']}, {meta['adapter']}, fingerprint {meta['fingerprint'][:12]}, dim {meta['dimension']}"

    lines = [
        f"# Embedding comparison: {name_a} vs {name_b}",
        "",
        f"- A: `{name_a}` ({describe(s['metadata_a'])})",
        f"- B: `{name_b}` ({describe(s['metadata_b'])})",
        f"- papers in both: {s['papers']} (only in A: {s['only_in_a']}, only in B: {s['only_in_b']})",
        f"- k nearest neighbours: k = {s['k']}, over {s['knn_papers']} papers",
        "",
        "| measure | mean | median | 5th percentile | min |",
        "| --- | --- | --- | --- | --- |",
        row("cosine(A, B aligned by orthogonal Procrustes)", s["cosine_aligned"]),
        row("cosine(A, B) without alignment", s["cosine_unaligned"]),
        row(f"overlap of the {s['k']} nearest neighbours", s["knn_overlap"]),
        "",
    ]
    if result.cosine is not None and len(result.ids) < 2 * result.dimensions[0]:
        lines += [
            f"Note: {len(result.ids)} papers for {result.dimensions[0]} dimensions: an orthogonal map fits"
            " such few points too well; the neighbour overlap is the safer measure.",
            "",
        ]
    return "\n".join(lines)


def plot_histograms(result: Comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("overlap of the k nearest neighbours", result.overlap)]
    if result.cosine is not None:
        panels.insert(0, ("cosine after orthogonal alignment", result.cosine))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5))
    for axis, (title, values) in zip(np.atleast_1d(axes), panels, strict=True):
        low = min(0.0, float(values.min()))  # fixed edges: identical values still make a histogram
        axis.hist(values, bins=np.linspace(low, 1.0, 41), color="#3b6ea8")
        axis.set_title(title)
        axis.set_ylabel("papers")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(result: Comparison, out_dir: str | Path, name_a: str, name_b: str) -> dict[str, Path]:
    """``compare.md``, ``compare.png`` and ``compare.json`` in ``out_dir``, each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "compare.md", "plot": out / "compare.png", "json": out / "compare.json"}
    plot_histograms(result, paths["plot"])
    for key, text in (
        ("markdown", markdown_summary(result, name_a, name_b)),
        ("json", json.dumps(result.summary(), indent=2) + "\n"),
    ):
        tmp = paths[key].with_name(f".{paths[key].name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, paths[key])
    return paths
