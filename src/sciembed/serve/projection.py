"""The 2-D map of the corpus: a PCA projection and k-means clusters, fitted once, applied to every add."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .vectors import normalise

MAX_FIT_VECTORS = 50_000
DEFAULT_CLUSTERS = 12


@dataclass(frozen=True)
class MapProjection:
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d)
    centroids: np.ndarray  # (c, d), unit length

    @classmethod
    def fit(cls, vectors: np.ndarray, clusters: int = DEFAULT_CLUSTERS, seed: int = 0) -> MapProjection:
        from sklearn.cluster import MiniBatchKMeans

        rng = np.random.default_rng(seed)
        unit = normalise(vectors)
        if len(unit) > MAX_FIT_VECTORS:
            unit = unit[rng.choice(len(unit), MAX_FIT_VECTORS, replace=False)]
        mean = unit.mean(axis=0)
        _, _, vt = np.linalg.svd(unit - mean, full_matrices=False)
        components = vt[:2] if len(vt) >= 2 else np.vstack([vt, np.zeros((2 - len(vt), unit.shape[1]))])
        n_clusters = max(1, min(clusters, len(unit)))
        kmeans = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=3).fit(unit)
        return cls(mean.astype(np.float32), components.astype(np.float32), normalise(kmeans.cluster_centers_))

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
