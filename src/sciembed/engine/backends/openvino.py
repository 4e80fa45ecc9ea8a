"""The OpenVINO backend: exported graphs (adapter inside) run by a compiled model's infer request."""

from __future__ import annotations

import numpy as np

from ..options import EncodeOptions
from .onnx import OnnxRunner


class OpenVinoRunner(OnnxRunner):
    """Batches as the ONNX runner pads them; one infer request, reused for every batch."""

    streamable = False  # one compiled model with its own threads (streams are OpenVINO's setting)

    def open(self, encoder, adapter: str | None):
        return encoder.compiled(adapter).create_infer_request()

    def infer(self, request, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return request.infer(inputs)[0]


def runner(encoder, adapter: str | None, options: EncodeOptions) -> OpenVinoRunner:
    return OpenVinoRunner(encoder, adapter, options.batch_size)
