"""One progress bar for long work (embedding, training, mining): tqdm, or nothing when not shown."""

from __future__ import annotations

from typing import Any


def progress_bar(
    total: int | None = None, show: bool = True, desc: str = "embedding", unit: str = "doc", **kwargs: Any
):
    """A tqdm bar (``update``, ``set_postfix``, ``close``); a disabled one does nothing and prints nothing."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not show, smoothing=0.05, **kwargs)
