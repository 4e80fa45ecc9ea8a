"""The packed forward on the CPU against the padded Hugging Face forward (issue 16, SPECTER2-style models).

    python benchmarks/cpu_packed_cls.py --docs 160 --rounds 2

The BERT-base-sized random model of ``embed_speed.py`` (SPECTER2's shape, a proximity adapter) on
``--docs`` real arXiv abstracts, fp32, batches of 32 length-sorted documents either way, CPU threads
= usable cores: docs/s of ``encode`` with CLS pooling through the padded forward, the packed forward
with the last layer for the first tokens only (forced on: the library does that on the GPU only) and
the packed forward with the whole last layer (the CPU default for CLS), and both forwards with mean
pooling; max abs difference of the vectors to the padded forward. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import embed_speed  # noqa: E402

from sciembed import EncodeOptions  # noqa: E402
from sciembed.model.encoder import SciEmbedModel  # noqa: E402

LIBRARY_FIRST_TOKENS_ONLY = SciEmbedModel.first_tokens_only  # CLS on the GPU only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arxiv", type=Path, default=Path("out/carry/sp-a/arxiv-sample.jsonl.gz"))
    parser.add_argument("--tokenizer", type=Path, default=Path("out/carry/sp-a/bert-tok"))
    parser.add_argument("--docs", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    embed_speed._MINILM_OVERRIDE = args.tokenizer
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    model = embed_speed.bert_base_model()
    methods = (  # name, pooling, packed, the last layer for the first tokens only
        ("CLS, padded (the CPU default before 2026-12-02)", "cls", False, True),
        ("CLS, packed, last layer for the first tokens", "cls", True, True),
        ("CLS, packed, whole last layer (the CPU default)", "cls", True, False),
        ("mean, padded (the CPU default)", "mean", False, True),
        ("mean, packed", "mean", True, True),
    )
    rates: dict[str, list[float]] = {name: [] for name, *_ in methods}
    diffs: dict[str, float] = {}
    for _ in range(args.rounds):
        reference = {}
        for name, pooling, packed, first in methods:
            model.config.pooling = pooling
            # the first-token last layer wherever CLS pools, the CPU included (the library: GPU only)
            SciEmbedModel.first_tokens_only = lambda self, packed, first=first: first and self.config.pooling == "cls"
            start = time.perf_counter()
            vectors = model.encode(papers, format="proximity", device="cpu", options=EncodeOptions(packed=packed))
            rates[name].append(len(papers) / (time.perf_counter() - start))
            reference.setdefault(pooling, vectors)
            diffs[name] = float(np.abs(vectors - reference[pooling]).max())
    SciEmbedModel.first_tokens_only = LIBRARY_FIRST_TOKENS_ONLY
    print(f"{args.docs} abstracts, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| forward | docs/s per round | max abs diff to the padded forward |")
    print("|---|---|---|")
    for name, *_ in methods:
        print(f"| {name} | {', '.join(f'{r:.2f}' for r in rates[name])} | {diffs[name]:.1e} |")


if __name__ == "__main__":
    main()
