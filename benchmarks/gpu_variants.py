"""End-to-end GPU embedding speed under host and kernel variants, each in its own process.

    python benchmarks/gpu_variants.py --arxiv out/carry/arxiv-sample.jsonl.gz --minilm out/carry/bert-tok \
        --variants "default;rayon=12;rayon=8;compile;compile,rayon=12"

A variant is a comma list of ``rayon=N`` (the Rust tokeniser's thread pool: ``RAYON_NUM_THREADS``,
read when the pool starts, hence one process per variant), ``compile`` (``EncodeOptions.compile``:
the packed layer stack through ``torch.compile``), ``fp16`` (instead of bf16), ``group=N``
(documents per tokenisation group, ``EncodeOptions.group_size``), ``queue=N`` and ``ahead=N`` (the
pipeline's depths: ``queue_batches``, ``tokenize_ahead``). Each process builds the BERT-base-sized
model with a proximity adapter (as ``embed_speed.py``), warms up, then times ``encode`` over the
documents ``--repeats`` times; it reports docs/s per round, how long the launching thread waited for the
host side, and the min / mean
cosine of its vectors to the plain packed path of the same process (before any compilation).
Prints a markdown table; writes JSON.
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
REPO = HERE.parent


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO / "src"))
    import embed_speed

    embed_speed._MINILM_OVERRIDE = args.minilm
    variant = dict(item.split("=") if "=" in item else (item, "1") for item in args.child.split(",") if item)
    from sciembed.engine import EncodeOptions, run_encode

    options = EncodeOptions(
        device="cuda",
        compile="compile" in variant,
        group_size=int(variant.get("group", 1024)),
        queue_batches=int(variant.get("queue", 16)),
        tokenize_ahead=int(variant.get("ahead", 2)),
    )
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    dtype = torch.float16 if "fp16" in variant else torch.bfloat16
    model = embed_speed.bert_base_model().place("cuda", dtype)
    reference = model.encode(papers[: args.check], "proximity", options=options.but(compile=False))
    start = time.perf_counter()
    model.encode(papers[:2048], "proximity", options=options)  # warm-up (and compilation)
    warm = time.perf_counter() - start
    rounds, waits = [], []
    for _ in range(args.repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = run_encode(model, papers, "proximity", options)
        torch.cuda.synchronize()
        rounds.append(len(papers) / (time.perf_counter() - t0))
        waits.append(result.wait_for_batches_s)
    check = model.encode(papers[: args.check], "proximity", options=options)
    cos = (check * reference).sum(1) / (np.linalg.norm(check, axis=1) * np.linalg.norm(reference, axis=1))
    print(
        "RESULT "
        + json.dumps(
            {
                "variant": args.child or "default",
                "docs_per_s": rounds,
                "median": float(np.median(rounds)),
                "warmup_s": warm,
                "wait_for_batches_s": waits,
                "cos_min": float(cos.min()),
                "cos_mean": float(cos.mean()),
                "rayon": os.environ.get("RAYON_NUM_THREADS", "all"),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arxiv", type=Path, required=True)
    parser.add_argument("--minilm", type=Path, default=None, help="folder with the BERT vocabulary")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", type=int, default=2000, help="documents compared with the plain path")
    parser.add_argument("--variants", default="default")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_variants")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args)
        return
    results = []
    for variant in [v.strip() for v in args.variants.split(";") if v.strip()]:
        options = [v for v in variant.split(",") if v and v != "default"]
        env = dict(os.environ)
        for item in options:
            if item.startswith("rayon="):
                env["RAYON_NUM_THREADS"] = item.split("=", 1)[1]
        command = [sys.executable, __file__, "--arxiv", str(args.arxiv), "--docs", str(args.docs)]
        command += ["--repeats", str(args.repeats), "--check", str(args.check), "--child", ",".join(options)]
        if args.minilm:
            command += ["--minilm", str(args.minilm)]
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"variant {variant!r} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        result = json.loads(line[len("RESULT ") :])
        result["variant"] = variant
        results.append(result)
        print(f"{variant}: {result['median']:.0f} docs/s {result['docs_per_s']}", flush=True)
    lines = [
        "| variant | docs/s (median) | rounds | launcher waiting for batches, s | warm-up s | cos min | cos mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rounds = ", ".join(f"{x:.0f}" for x in r["docs_per_s"])
        waits = ", ".join(f"{x:.2f}" for x in r["wait_for_batches_s"])
        lines.append(
            f"| {r['variant']} | {r['median']:.0f} | {rounds} | {waits} | {r['warmup_s']:.1f} | {r['cos_min']:.6f} | "
            f"{r['cos_mean']:.6f} |"
        )
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_variants.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "gpu_variants.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
