"""A/B of the default GPU encode path between two source trees, in one process each, same workload.

    python3 benchmarks/engine_ab.py --tree .old --arxiv A.jsonl.gz --minilm DIR   # the tree before the engine
    python3 benchmarks/engine_ab.py --tree .    --arxiv A.jsonl.gz --minilm DIR   # this tree

Each tree is imported from ``TREE/src`` with its own ``benchmarks/embed_speed.py`` model builders
(random BERT-base-sized encoder with a proximity adapter; all-MiniLM-L6-v2 with one), so the only
difference is the library code. Prints one JSON line per model: docs/s of ``encode(papers,
"proximity", device="cuda")`` (the default, no flags) per repeat, after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--arxiv", type=Path, required=True)
    parser.add_argument("--minilm", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="minilm,bert-base")
    args = parser.parse_args()
    tree = args.tree.resolve()
    sys.path[:0] = [str(tree / "src"), str(tree / "benchmarks")]
    import embed_speed
    import torch

    embed_speed._MINILM_OVERRIDE = args.minilm
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    builders = {"bert-base": embed_speed.bert_base_model, "minilm": embed_speed.minilm_model}
    for name in args.models.split(","):
        model = builders[name]().place("cuda", torch.float16)
        model.encode(papers, "proximity", device="cuda")  # warm-up (allocator, kernels)
        rates = []
        for _ in range(args.repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            model.encode(papers, "proximity", device="cuda")
            torch.cuda.synchronize()
            rates.append(len(papers) / (time.perf_counter() - start))
        print(json.dumps({"tree": str(args.tree), "model": name, "docs": len(papers), "docs_per_s": rates}), flush=True)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
