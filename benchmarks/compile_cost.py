"""What ``EncodeOptions(compile=True)`` costs once, in a fresh process and with inductor's cache warm.

    python3 benchmarks/compile_cost.py --arxiv /root/speed/arxiv-sample.jsonl.gz --tokenizer /root/speed/bert-tok \
        --processes 2 --out $OUT/compile

Runs ``--processes`` child processes one after another with the same ``TORCHINDUCTOR_CACHE_DIR``
(the first compiles cold, the later ones find inductor's FX-graph and kernel caches): each builds the
BERT-base-sized model of ``embed_speed.py`` in fp16 on CUDA, times eager ``encode`` of the documents,
then the first compiled ``encode`` (compilation included) and a second one. The compile cost is the
first compiled call minus the second; the break-even job size is cost / (1/eager - 1/compiled rate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "src"))
    import embed_speed

    from sciembed import EncodeOptions

    embed_speed._MINILM_OVERRIDE = args.tokenizer
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    model = embed_speed.bert_base_model().place("cuda", "fp16")

    def timed(options: EncodeOptions) -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.encode(papers, format="proximity", options=options)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    eager = EncodeOptions(tokenize_workers=0, progress=False)
    timed(eager)
    eager_s = timed(eager)
    compiled = eager.but(compile=True)
    first_s = timed(compiled)
    second_s = timed(compiled)
    return {
        "docs": len(papers),
        "eager_s": round(eager_s, 3),
        "compiled_first_s": round(first_s, 3),
        "compiled_s": round(second_s, 3),
        "compile_cost_s": round(first_s - second_s, 2),
        "eager_docs_per_s": round(len(papers) / eager_s),
        "compiled_docs_per_s": round(len(papers) / second_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arxiv", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="a BERT tokenizer folder")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/sciembed-inductor-cache"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(args.cache))
    rows = []
    for index in range(args.processes):
        command = [sys.executable, __file__, "--child", "--arxiv", str(args.arxiv), "--tokenizer", str(args.tokenizer)]
        command += ["--docs", str(args.docs)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        row = json.loads(lines[-1]) if lines else {"error": done.stderr[-500:]}
        row["process"] = index + 1
        row["inductor_cache"] = "cold" if index == 0 else "warm"
        if "compile_cost_s" in row:
            gain = 1 / row["eager_docs_per_s"] - 1 / row["compiled_docs_per_s"]
            row["break_even_docs"] = round(row["compile_cost_s"] / gain) if gain > 0 else None
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv)}
        (args.out / "compile_cost.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
