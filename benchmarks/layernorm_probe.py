"""The fused add + LayerNorm kernel's launch settings on the GPU: which is fastest (issue 16).

    python3 benchmarks/layernorm_probe.py --out $OUT/layernorm

For BERT-base's and MiniLM's hidden sizes (768, 384) on a 65,536-token packed batch (the engine's
budget) in fp16, with two terms (``ln(x + residual)``) and three (the adapter's residual as well),
this times ``sciembed.model.fused_norm.launch_add_layer_norm`` for each rows-per-program x warps
setting, next to PyTorch's add + ``layer_norm`` kernels, and reports microseconds per call and the
bandwidth that implies (each input read once, the output written once). Prints a markdown table and
writes ``layernorm_probe.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from sciembed.model.fused_norm import NORM_LAUNCH, NormLaunch, launch_add_layer_norm  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Best of ``repeats`` CUDA-event timings of 20 calls, in microseconds per call."""
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(20):
            fn()
        stop.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(stop) * 1000 / 20)
    return best


def measure(n: int, terms: int, args: argparse.Namespace) -> list[dict]:
    """Every setting (and PyTorch's kernels) for one hidden size and number of terms."""
    ln = torch.nn.LayerNorm(n).cuda().half()
    x, residual, extra = (torch.randn(args.tokens, n, device="cuda", dtype=torch.float16) for _ in range(3))
    third = extra if terms == 3 else None
    bytes_moved = (terms + 1) * args.tokens * n * 2
    want = launch_add_layer_norm(x, residual, ln, third, NormLaunch(1, 4))

    def torch_kernels():
        h = x + third + residual if third is not None else x + residual
        return F.layer_norm(h, (n,), ln.weight, ln.bias, ln.eps)

    rows = [("torch add + layer_norm", timed(torch_kernels, args.repeats), 0.0)]
    for r in (int(v) for v in args.rows.split(",")):
        for w in (int(v) for v in args.warps.split(",")):
            launch = NormLaunch(r, w)
            got = launch_add_layer_norm(x, residual, ln, third, launch)
            diff = float((got.float() - want.float()).abs().max())
            us = timed(lambda launch=launch: launch_add_layer_norm(x, residual, ln, third, launch), args.repeats)
            rows.append((f"rows {r}, warps {w}", us, diff))
    return [
        {"hidden": n, "terms": terms, "setting": name, "us_per_call": round(us, 2),
         "tb_per_s": round(bytes_moved / us / 1e6, 2), "max_abs_diff": diff}
        for name, us, diff in rows
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=65536)
    parser.add_argument("--hidden", default="768,384")
    parser.add_argument("--rows", default="1,2,4,8,16")
    parser.add_argument("--warps", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = [
        row for n in (int(h) for h in args.hidden.split(",")) for terms in (2, 3) for row in measure(n, terms, args)
    ]
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "tokens": args.tokens,
            "library_table": {str(k): v._asdict() for k, v in NORM_LAUNCH.items()}}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "layernorm_probe.json").write_text(json.dumps({"meta": meta, "rows": results}, indent=2) + "\n")
    print(meta)
    print("| hidden | terms | setting | us per call | TB/s | max abs diff vs rows 1, warps 4 |")
    print("|---|---|---|---|---|---|")
    for r in results:
        cells = (r["hidden"], r["terms"], r["setting"], r["us_per_call"], r["tb_per_s"], f"{r['max_abs_diff']:.1e}")
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
