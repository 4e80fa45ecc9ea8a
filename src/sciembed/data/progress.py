"""The one progress bar of long work (embedding, training, mining, indexing, downloads): tqdm on
stderr, or nothing at all when not shown. Every command's bar comes from here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def progress_bar(
    total: int | None = None,
    show: bool = True,
    desc: str = "embedding",
    unit: str = "doc",
    iterable: Iterable[Any] | None = None,
    initial: int = 0,
    **kwargs: Any,
):
    """A tqdm bar (``update``, ``set_postfix``, ``close``; iterate it when ``iterable`` is given); a
    disabled one does nothing and prints nothing. ``initial``: work already done (a resumed job)."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable, total=total, desc=desc, unit=unit, initial=initial, disable=not show, smoothing=0.05, **kwargs
    )
