"""Length buckets for padded forwards: the sequences of one forward group, sorted by length and cut into
chunks that are each padded to their own longest sequence, so that a title does not pay for an abstract.
On mixture v3's lengths (MPNet tokens, batch 128) one padded forward per adapter pads 58k tokens per
step for 22k real ones; buckets with ``overhead_tokens=2048`` pad 30k in about 7 forwards.

Used where training does not take the packed (unpadded) forward (MPNet: measured slower there, see
``sciembed.model.packed.trains_packed``; any base on CPU). The chunks go through the encoder one
after the other inside one training step; their outputs are put back in the original order, so the
loss (and every gradient) is that of one padded forward, up to float rounding.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...model.text import HostPadded

PAD_MULTIPLE = 8  # chunks padded to a multiple of 8 tokens: aligned attention masks for SDPA kernels


def length_buckets(lengths: Sequence[int], overhead_tokens: int, multiple: int = PAD_MULTIPLE) -> list[list[int]]:
    """Indices of ``lengths`` by increasing length, cut into chunks that minimise the padded tokens
    (each chunk: sequences x its longest, rounded up to ``multiple``) plus ``overhead_tokens`` per
    chunk, the cost of one more forward. Exact: a dynamic programme over the distinct padded widths."""
    widths = [-(-max(length, 1) // multiple) * multiple for length in lengths]
    counts = Counter(widths)
    distinct = sorted(counts)
    best = [0] + [None] * len(distinct)  # best[j]: cost of the j narrowest widths
    start = [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        sequences = 0
        for i in range(j, 0, -1):  # the last chunk holds widths i..j (1-based)
            sequences += counts[distinct[i - 1]]
            cost = best[i - 1] + distinct[j - 1] * sequences + overhead_tokens
            if best[j] is None or cost < best[j]:
                best[j], start[j] = cost, i - 1
    edges, j = [], len(distinct)
    while j > 0:  # the widest width of every chunk, from the widest chunk down
        edges.append(distinct[j - 1])
        j = start[j]
    edges.reverse()
    chunks: list[list[int]] = [[] for _ in edges]
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        chunks[bisect_left(edges, widths[index])].append(index)
    return chunks


@dataclass
class BucketedPadded:
    """Padded chunks of one forward group (on a device) and the permutation back to the input order:
    ``torch.cat(outputs)[inverse]`` is row ``i`` = sequence ``i``."""

    chunks: list[dict[str, torch.Tensor]]
    inverse: torch.Tensor

    @classmethod
    def of(
        cls, seqs: Sequence[Sequence[int]], pad_id: int, overhead_tokens: int, device: torch.device, pin: bool = False
    ) -> BucketedPadded:
        buckets = length_buckets([len(s) for s in seqs], overhead_tokens)
        order = torch.tensor([i for bucket in buckets for i in bucket], dtype=torch.long)
        chunks = [HostPadded.of([seqs[i] for i in b], pad_id, pin, multiple=PAD_MULTIPLE).to(device) for b in buckets]
        return cls(chunks, torch.argsort(order).to(device))

    def padded_tokens(self) -> int:
        return sum(int(chunk["input_ids"].numel()) for chunk in self.chunks)
