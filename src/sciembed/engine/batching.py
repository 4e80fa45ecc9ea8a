"""Which documents travel together: length-sorted batches under a size and token budget, in groups."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def length_sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    With ``max_tokens`` a batch also stops growing when batch size x its longest length would pass
    the budget, so short documents travel in large batches and long ones in small ones.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        full = len(current) >= batch_size
        over_budget = max_tokens is not None and current and (len(current) + 1) * longest > max_tokens
        if full or over_budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def groups(count: int, size: int) -> Iterator[range]:
    """Consecutive ranges of ``size`` documents; a short tail joins the group before it, so that every
    group sorts well."""
    start = 0
    while start < count:
        stop = count if count - (start + size) < size // 4 else start + size
        yield range(start, stop)
        start = stop
