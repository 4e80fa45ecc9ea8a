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
    parser.add_argument("--settle", type=float, default=0.0, help="seconds to wait after the warm-up run")
    parser.add_argument(
        "--workers",
        default="default",
        help="comma list of tokeniser-process settings to time: 'default' (no options) or N "
        "(EncodeOptions(tokenize_workers=N); trees that have it)",
    )
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
        for variant in args.workers.split(","):
            kwargs = {}
            if variant != "default":
                from sciembed import EncodeOptions

                kwargs["options"] = EncodeOptions(tokenize_workers=int(variant))
            model.encode(papers, "proximity", device="cuda", **kwargs)  # warm-up (allocator, kernels, processes)
            time.sleep(args.settle)  # automatic tokeniser processes start in the background
            rates = []
            for _ in range(args.repeats):
                torch.cuda.synchronize()
                start = time.perf_counter()
                model.encode(papers, "proximity", device="cuda", **kwargs)
                torch.cuda.synchronize()
                rates.append(len(papers) / (time.perf_counter() - start))
            row = {"tree": str(args.tree), "model": name, "workers": variant, "docs": len(papers), "docs_per_s": rates}
            print(json.dumps(row), flush=True)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
