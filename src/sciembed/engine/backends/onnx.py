"""The ONNX backend: exported graphs (adapter inside) run by onnxruntime sessions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...model.text import pad_ids
from ..options import EncodeOptions


class OnnxRunner:
    pipeline_default = False  # onnxruntime already uses every core for each batch
    default_max_tokens = None

    def __init__(self, encoder, adapter: str | None):
        self.encoder = encoder
        self.session = encoder.session(adapter)
        self.out: np.ndarray | None = None

    def prepare(self, seqs: Sequence[np.ndarray], rows: Sequence[int]) -> tuple[dict[str, np.ndarray], list[int]]:
        input_ids, mask = pad_ids(seqs, self.encoder.pad_id)
        return {"input_ids": input_ids, "attention_mask": mask}, list(rows)

    def begin(self, count: int) -> None:
        self.out = np.zeros((count, self.encoder.dimension), dtype=np.float32)

    def run(self, batch: tuple[dict[str, np.ndarray], list[int]]) -> int:
        inputs, rows = batch
        self.out[rows] = self.session.run(["embedding"], inputs)[0]
        return len(rows)

    def finish(self) -> np.ndarray:
        return self.out


def runner(encoder, adapter: str | None, options: EncodeOptions) -> OnnxRunner:
    return OnnxRunner(encoder, adapter)
