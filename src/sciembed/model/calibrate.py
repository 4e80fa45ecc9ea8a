"""Papers to calibrate int8 activation ranges on, as length-sorted padded batches of token ids.

The default is 256 real arXiv abstracts (arXiv metadata is CC0), shipped in
``sciembed/model/calibration/``, none of them among the first 70,000 papers of
``../shared/data/arxiv`` that the speed benchmarks embed. Any JSON-lines papers file can replace it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .text import pad_ids

CALIBRATION_FILE = Path(__file__).parent / "calibration" / "arxiv-calibration.jsonl.gz"
CALIBRATION_BATCH = 32


def calibration_papers(path: str | Path | None = None, limit: int = 256) -> list[dict]:
    """Papers (title, abstract) to calibrate activation ranges on: a JSON-lines file (``.gz`` too)."""
    path = Path(path) if path is not None else CALIBRATION_FILE
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    papers = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not (row.get("title") or row.get("abstract")):
                raise ValueError(f"{path}:{number}: a calibration paper needs a title or an abstract")
            papers.append(row)
            if len(papers) >= limit:
                break
    if not papers:
        raise ValueError(f"{path}: no calibration papers")
    return papers


def calibration_batches(model: Any, papers: Sequence[dict]) -> list[dict[str, np.ndarray]]:
    """Length-sorted padded batches of the papers, as the engine would form them."""
    from ..engine.batching import length_sorted_batches

    ids = model.tokenize(model.texts(papers)) if papers else []
    batches = []
    for batch in length_sorted_batches([len(x) for x in ids], CALIBRATION_BATCH):
        input_ids, mask = pad_ids([ids[i] for i in batch], model.pad_id)
        batches.append({"input_ids": input_ids, "attention_mask": mask})
    return batches
