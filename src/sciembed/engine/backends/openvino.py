"""The OpenVINO backend: exported graphs (adapter inside) run by a compiled model's infer request."""

from __future__ import annotations

import numpy as np

from ..options import EncodeOptions
from .onnx import OnnxRunner


class OpenVinoRunner(OnnxRunner):
    """Batches as the ONNX runner pads them; one infer request, reused for every batch."""

    def __init__(self, encoder, adapter: str | None):
        self.encoder = encoder
        self.request = encoder.compiled(adapter).create_infer_request()
        self.out: np.ndarray | None = None

    def run(self, batch: tuple[dict[str, np.ndarray], list[int]]) -> int:
        inputs, rows = batch
        self.out[rows] = self.request.infer(inputs)[0]
        return len(rows)


def runner(encoder, adapter: str | None, options: EncodeOptions) -> OpenVinoRunner:
    return OpenVinoRunner(encoder, adapter)
