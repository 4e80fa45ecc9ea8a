"""``encode`` for every encoder that the engine drives (the PyTorch model, the ONNX encoder, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import Paper
from ..engine.options import EncodeOptions, resolve_options


class EngineEncode:
    """The :class:`~sciembed.model.protocol.Encoder` ``encode``: options in, the engine does the rest."""

    def encode(
        self,
        papers: Sequence[Paper | dict | str],
        format: str = "proximity",
        batch_size: int | None = None,
        device: Any = None,
        dtype: Any = None,
        show_progress: bool | None = None,
        fields: Sequence[str] | None = None,
        max_tokens: int | None = None,
        *,
        options: EncodeOptions | None = None,
    ) -> np.ndarray:
        """Embed papers (Paper objects, dicts with title/abstract, or plain query strings).

        Returns a float32 array ``(len(papers), dim)`` in input order. ``format`` picks the adapter
        (``proximity``, ``classification``, ``regression``, ``adhoc_query`` or ``[PRX]``-style
        aliases); a model without adapters uses its base for every format. ``options``
        (:class:`~sciembed.EncodeOptions`) says how the call runs; the keyword arguments override
        the same-named settings. On CUDA the defaults are the pipelined, packed, token-budget path
        in fp16; on CPU ``batch_size`` documents per length-sorted batch in fp32.
        """
        from ..engine import run_encode  # the engine builds on the model: imported when used

        opts = resolve_options(options, batch_size, device, dtype, show_progress, fields, max_tokens)
        return run_encode(self, papers, format, opts).vectors
