"""The vectors this code computes, in one digest, so that a resumed job never mixes two versions.

A job's other settings (model fingerprint, format, batch size, dtype, device type ...) do not pin the
arithmetic: a newer sciembed (another attention kernel, the last layer for the first tokens only),
another torch or another GPU can move vectors by float rounding. Parts written before such a change
and parts written after it would end in one file that no single run could have written. So a job
embeds two fixed probe papers with its own model and options when it starts, and the digest of
their vectors is part of the job's identity: a resume that computes other bits is refused.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..data import Paper

PROBE_ID_PREFIX = "sciembed-numerics-probe-"

# A long abstract (several attention tiles, truncated by short-context models) and a title alone.
_ABSTRACT = (
    "We study how citation-informed transformer embeddings of scientific documents transfer across "
    "fields. Starting from a general sentence encoder, we train on citation triplets mined from two "
    "graphs, one from computational linguistics and one from high-energy physics, and add small "
    "bottleneck adapters for classification, regression, proximity and ad-hoc search. To keep what "
    "the starting model knows, the first stage is a low-rank update with a distillation term towards "
    "the initial embeddings of a broad corpus, and the second stage trains only the adapters. We "
    "evaluate on a benchmark that separates tasks whose data training used from tasks it never saw, "
    "with paired bootstrap confidence intervals over queries and items, several cross-validation "
    "seeds for the linear classifiers, and a correlation analysis that shows which tasks measure the "
    "same property. Out of training the adapted model improves search and classification, while "
    "proximity tasks built from other citation sources stay where the starting model was. Publication "
    "year regression degrades, because citations connect papers across decades, and we show that the "
    "loss already appears in the first stage. We release code, configurations, per-item results and "
    "the exact commands of every run, and discuss throughput on a single accelerator, including "
    "packed variable-length batches, fused normalisation kernels and reduced-precision products."
)
PROBE_PAPERS = (
    Paper(PROBE_ID_PREFIX + "0", "Transfer of citation-informed document embeddings across fields", _ABSTRACT),
    Paper(PROBE_ID_PREFIX + "1", "A note on adapters"),
)


def vectors_digest(model, format: str, options) -> str:
    """sha256 (16 hex digits) of ``model``'s float32 vectors of :data:`PROBE_PAPERS` in ``format``,
    encoded with ``options`` exactly as the job encodes a chunk."""
    vectors = model.encode(list(PROBE_PAPERS), format=format, options=options)
    data = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]
