"""Where the embedding time goes on the GPU: producer alone, GPU alone, end to end, torch.profiler.

    python benchmarks/profile_embed.py [--docs 20000] [--model bert-base|minilm] [--compile] [--producer-only]

Prints: tokenisation and producer (tokenise + pack/collate + pin) seconds with the device idle; the
forward loop alone on batches already on the device; encode() end to end for the padded and the
packed paths and several token budgets; agreement with fp32; the top CUDA and CPU ops of a short
packed run, and its CUDA kernel time by family (GEMM, attention, fused elementwise, ...); with
``--compile`` the same for the compiled packed path.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import embed_speed  # noqa: E402


def producer_seconds(
    model, papers, packed: bool, max_tokens: int, overlap: bool = True, pin: bool = True, workers: int = 0
) -> tuple[float, list]:
    """The engine's host side alone (tokenise, sort, pad or pack, pin): seconds and the prepared batches."""
    from sciembed.engine import EncodeOptions
    from sciembed.engine.backends import runner_for
    from sciembed.engine.run import host_batches, plan_batches

    options = EncodeOptions(
        batch_size=max_tokens,
        max_tokens=max_tokens,
        pipeline=True,
        packed=packed,
        tokenize_ahead=2 if overlap else 0,
        tokenize_workers=workers,
    )
    runner = runner_for(model, "proximity", options)
    runner.pin = pin
    start = time.perf_counter()
    items = list(host_batches(model, papers, runner, plan_batches(runner, len(papers), options)))
    return time.perf_counter() - start, items


def timed(fn, repeats=2):
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def producer_only(model, papers) -> None:
    """Wall and CPU seconds (all threads of this process) of the host side alone, no device work."""
    n, pin = len(papers), torch.cuda.is_available()

    def measure(label, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"| {label} | {wall:.2f} ({n / wall:.0f}) | {cpu:.2f} ({n / cpu:.0f}) |", flush=True)

    model.tokenize(model.texts(papers[:256]))  # warm-up (tokenizer copy, rayon pool)
    print(f"{n} docs; threads: {torch.get_num_threads()}, cores: {len(os.sched_getaffinity(0))}")
    print("| step | wall s (docs/s) | CPU s (docs per CPU-s) |\n|---|---|---|")
    texts: list[str] = []
    measure("texts (title [SEP] abstract)", lambda: texts.extend(model.texts(papers)))
    measure("tokenize, one Rust batch call", lambda: model.tokenize(texts))
    for overlap in (False, True):
        for _ in range(2):
            label = f"producer packed 64k, {'overlapped' if overlap else 'inline'} tokeniser, pin={pin}"
            measure(label, lambda o=overlap: producer_seconds(model, papers, True, 65536, overlap=o, pin=pin))


KERNEL_FAMILIES = (  # (family, substrings of CUDA kernel names), first match wins
    # attention first: FlashAttention's kernel names hold "cutlass" (its template arguments)
    ("attention (FlashAttention varlen, sciembed's Triton kernel)", ("flash", "fmha", "attn", "attention_kernel")),
    ("GEMM (cuBLAS / CUTLASS)", ("gemm", "nvjet", "xmma", "cutlass", "sm90_", "sm80_", "ampere_", "cublas")),
    ("fused elementwise (inductor Triton)", ("triton_",)),
    ("LayerNorm", ("layer_norm", "layernorm")),
    ("GELU", ("gelu",)),
    ("copies, index, gather", ("copy", "index", "gather", "scatter", "memcpy", "memset", "cat")),
    ("other elementwise / reductions", ("elementwise", "reduce", "vectorized", "unrolled")),
)


def kernel_families(prof) -> list[tuple[str, float, float]]:
    """CUDA kernel time of a profile by family: (family, ms, share), largest first."""
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        # kernels only: the aten ops above them report the same device time again
        if "cuda" not in str(getattr(event, "device_type", "")).lower():
            continue
        us = float(getattr(event, "self_device_time_total", 0) or getattr(event, "self_cuda_time_total", 0) or 0)
        name = event.key.lower()
        if us <= 0 or "command buffer" in name:  # a CUPTI marker, not a kernel
            continue
        family = next((f for f, keys in KERNEL_FAMILIES if any(k in name for k in keys)), "other")
        totals[family] = totals.get(family, 0.0) + us / 1000
    whole = sum(totals.values()) or 1.0
    return sorted(((f, ms, ms / whole) for f, ms in totals.items()), key=lambda r: -r[1])


def main() -> None:
    from sciembed.engine import EncodeOptions

    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--model", default="bert-base")
    parser.add_argument("--arxiv", type=Path, default=Path("out/carry/arxiv-sample.jsonl.gz"))
    parser.add_argument("--minilm", type=Path, default=Path("out/carry/minilm-fp16"))
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"], help="GPU dtype (default: the default)")
    parser.add_argument("--compile", action="store_true", help="profile the compiled packed path as well")
    parser.add_argument(
        "--producer-only", action="store_true", help="time text building, tokenisation and the producer only"
    )
    args = parser.parse_args()
    embed_speed._MINILM_OVERRIDE = args.minilm if args.minilm.is_dir() else None
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    build = embed_speed.bert_base_model if args.model == "bert-base" else embed_speed.minilm_model
    if args.producer_only:
        producer_only(build(), papers)
        return
    model = build().place("cuda", torch.float16 if args.dtype == "fp16" else torch.bfloat16)
    n = len(papers)
    texts = model.texts(papers)
    start = time.perf_counter()
    ids = model.tokenize(texts)
    tok = time.perf_counter() - start
    tokens = sum(map(len, ids))
    print(f"{n} docs, {tokens / n:.0f} tokens/doc; tokenize (one call) {tok:.2f}s = {n / tok:.0f} docs/s")

    rows = []
    model.encode(papers[:512], "proximity")  # warm-up
    for packed, budget in ((False, 16384), (True, 32768), (True, 65536), (True, 131072)):
        seconds, items = producer_seconds(model, papers, packed, budget)
        # GPU alone: every batch already on the device
        if packed:
            dev = [host.to("cuda") for host in items]
            fn = lambda dev=dev: [model.forward_packed(b, "proximity") for b, _ in dev]  # noqa: E731
        else:
            dev = [host.to("cuda") for host, _ in items]
            fn = lambda dev=dev: [model(t["input_ids"], t["attention_mask"], "proximity") for t in dev]  # noqa: E731
        with torch.inference_mode():
            fn()
            gpu = timed(fn)
        del dev
        options = EncodeOptions(max_tokens=budget, batch_size=budget, packed=packed)
        end = timed(lambda o=options: model.encode(papers, "proximity", options=o))
        rows.append((f"{'packed' if packed else 'padded'} tok{budget}", len(items), seconds, gpu, end))
    print("| path | batches | producer s (docs/s) | GPU-only s (docs/s) | encode s (docs/s) |")
    for name, count, prod, gpu, end in rows:
        cells = [f"{s:.2f} ({n / s:.0f})" for s in (prod, gpu, end)]
        print(f"| {name} | {count} | " + " | ".join(cells) + " |")

    # agreement with fp32 (plain padded HF path) on a subset
    sub = papers[:3000]
    fast = model.encode(sub, "proximity")
    ref_model = build().place("cuda", torch.float32)
    ref = ref_model.encode(sub, "proximity", options=EncodeOptions(batch_size=32, max_tokens=8192, packed=False))
    cos = (fast * ref).sum(1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(ref, axis=1))
    print(f"packed {args.dtype} vs fp32 padded: cos min {cos.min():.6f} mean {cos.mean():.6f}")
    del ref_model

    from torch.profiler import ProfilerActivity, profile

    variants = [("eager", EncodeOptions(compile=False))]
    if args.compile:
        variants.append(("compiled", EncodeOptions(compile=True)))
    for label, options in variants:
        model.encode(papers[:2048], "proximity", options=options)  # warm-up (compiles once)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model.encode(papers[:4000], "proximity", options=options)
            torch.cuda.synchronize()
        print(f"\n## {label}: CUDA kernel time by family (4,000 documents)")
        print("| family | ms | share |\n|---|---|---|")
        for family, ms, share in kernel_families(prof):
            print(f"| {family} | {ms:.1f} | {share:.0%} |")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=60))


if __name__ == "__main__":
    main()
