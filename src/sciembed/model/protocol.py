"""What every encoder offers, whatever computes it (PyTorch, ONNX, a server, a cache in front)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..data import Paper

if TYPE_CHECKING:
    from ..engine.options import EncodeOptions


@runtime_checkable
class Encoder(Protocol):
    """Papers in, float32 vectors out, one row per paper in input order.

    ``name``: display name; ``formats``: formats with their own adapter or graph (empty: one function
    serves every format); ``dimension``: vector length; ``fingerprint``: sha256 that changes whenever
    the embeddings could (weights, settings), the key of caches and resumable jobs.
    """

    @property
    def name(self) -> str: ...

    @property
    def formats(self) -> Sequence[str]: ...

    @property
    def dimension(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

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
    ) -> np.ndarray: ...
