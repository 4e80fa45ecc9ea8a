"""The 2-D map of the corpus: a PCA projection and k-means clusters, fitted once, applied to every add."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .vectors import normalise

MAX_FIT_VECTORS = 20_000
DEFAULT_CLUSTERS = 12


@dataclass(frozen=True)
class MapProjection:
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d)
    centroids: np.ndarray  # (c, d), unit length

    @classmethod
    def fit(cls, vectors: np.ndarray, clusters: int = DEFAULT_CLUSTERS, seed: int = 0) -> MapProjection:
        """PCA from the covariance matrix (d x d) and FAISS k-means, on at most MAX_FIT_VECTORS vectors:
        a map needs the broad shape, and this keeps the fit to seconds on a busy 2-core machine."""
        import faiss

        rng = np.random.default_rng(seed)
        unit = normalise(vectors)
        if len(unit) > MAX_FIT_VECTORS:
            unit = unit[np.sort(rng.choice(len(unit), MAX_FIT_VECTORS, replace=False))]
        mean = unit.mean(axis=0)
        centred = unit - mean
        _, eigenvectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        components = eigenvectors[:, ::-1][:, :2].T
        if components.shape[0] < 2:
            components = np.vstack([components, np.zeros((2 - len(components), unit.shape[1]))])
        n_clusters = max(1, min(clusters, len(unit)))
        kmeans = faiss.Kmeans(unit.shape[1], n_clusters, niter=20, seed=seed, spherical=True)
        kmeans.cp.min_points_per_centroid = 1  # tiny corpora: no warning, every point may be a centre
        kmeans.train(np.ascontiguousarray(unit, dtype=np.float32))
        return cls(mean.astype(np.float32), components.astype(np.float32), normalise(kmeans.centroids))

    def apply(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        unit = normalise(vectors)
        xy = (unit - self.mean) @ self.components.T
        clusters = np.argmax(unit @ self.centroids.T, axis=1)
        return xy.astype(np.float32), clusters.astype(np.int64)

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, mean=self.mean, components=self.components, centroids=self.centroids)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> MapProjection:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["components"], data["centroids"])
