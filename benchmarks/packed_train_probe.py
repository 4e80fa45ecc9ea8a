"""Training step speed of the packed forward against the padded one (stage 2's setting: a frozen base,
trainable adapters, bf16 autocast), on the same real abstracts in the same length-sorted batches.

Each step: a forward of one batch of documents, a loss (sum of squares of the pooled output), the
backward into the adapters (and nothing else: no optimiser, so only the forward and backward paths
differ). ``padded``: the Hugging Face forward of the padded batch (MPNet: our SDPA attention with
the relative position bias and padding mask as one float mask); ``buckets``: the same, the batch cut
into the length buckets stage 2 uses without a packed forward (``bucket_overhead_tokens``);
``packed``: ``forward_packed`` (MPNet: attention as SDPA on per-document blocks with the bias; the
Triton kernel serves inference only). Reports documents per second per variant and the largest
difference of the pooled outputs and adapter gradients against ``padded``.

    python benchmarks/packed_train_probe.py --model mpnet-base --arxiv A.jsonl.gz --minilm MINILM --docs 4096 --out DIR
    python benchmarks/packed_train_probe.py --model tiny-mpnet --docs 64 --batch 16   # CPU smoke test
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent  # benchmarks/
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import embed_speed  # noqa: E402

from sciembed.model.packed import pack  # noqa: E402
from sciembed.train.multitask.buckets import BucketedPadded  # noqa: E402

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96)
BUILDERS = {
    "mpnet-base": embed_speed.mpnet_base_model,
    "bert-base": embed_speed.bert_base_model,
    "tiny-mpnet": functools.partial(embed_speed.mpnet_base_model, **TINY),
}


def batches(seqs: list[list[int]], size: int) -> list[list[list[int]]]:
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    return [[seqs[i] for i in order[start : start + size]] for start in range(0, len(order), size)]


def step(model, batch: list[list[int]], variant: str, device: str, overhead: int) -> torch.Tensor:
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    )
    with autocast:
        if variant == "packed":
            pooled = model.forward_packed(pack(batch, device), format="proximity", normalize=False)
        elif variant == "padded":
            padded = {k: v.to(device) for k, v in model.collate(batch).items()}
            pooled = model(padded["input_ids"], padded["attention_mask"], format="proximity", normalize=False)
        else:  # buckets: the padded forward per length bucket, rows back in batch order (stage 2's way)
            plan = BucketedPadded.of(batch, model.pad_id, overhead, torch.device(device))
            parts = [
                model(chunk["input_ids"], chunk["attention_mask"], format="proximity", normalize=False)
                for chunk in plan.chunks
            ]
            pooled = torch.cat(parts)[plan.inverse]
    pooled.float().square().sum().backward()
    return pooled.detach().float()


def adapter_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mpnet-base", choices=sorted(BUILDERS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arxiv", type=Path, default=embed_speed.DEFAULT_ARXIV)
    parser.add_argument("--minilm", type=Path, default=None, help="a folder with the bert-base-uncased tokenizer")
    parser.add_argument("--docs", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64, help="documents per step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overhead", type=int, default=2048, help="bucket_overhead_tokens of the buckets variant")
    parser.add_argument("--variants", default="padded,buckets,packed")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    embed_speed._MINILM_OVERRIDE = args.minilm

    model = BUILDERS[args.model]().place(args.device, torch.float32)
    for name, param in model.named_parameters():  # stage 2: the base frozen, the adapters trained
        param.requires_grad_("adapter" in name)
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    seqs = model.tokenize(model.texts(papers))
    groups = batches(seqs, args.batch)
    variants = args.variants.split(",")
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    reference = {}
    agreement = {}
    for variant in variants:  # one batch each: outputs and gradients against the padded forward
        model.zero_grad(set_to_none=True)
        pooled = step(model, groups[-1], variant, args.device, args.overhead)
        reference[variant] = (pooled, adapter_grads(model))
    base_out, base_grads = reference[variants[0]]
    for variant, (pooled, grads) in reference.items():
        grad_diff = max(
            ((grads[n] - g).abs().max() / g.abs().max().clamp(min=1e-12)).item() for n, g in base_grads.items()
        )
        agreement[variant] = {
            "pooled_max_abs_diff": (pooled - base_out).abs().max().item(),
            "grad_max_rel_diff": grad_diff,
        }

    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            sync()
            start = time.perf_counter()
            for batch in groups:
                model.zero_grad(set_to_none=True)
                step(model, batch, variant, args.device, args.overhead)
            sync()
            seconds[variant].append(time.perf_counter() - start)
            print(f"  {variant:<8} {len(papers) / seconds[variant][-1]:9.1f} docs/s", file=sys.stderr)

    rows = []
    for variant in variants:
        median = statistics.median(seconds[variant])
        rows.append(
            {"variant": variant, "docs_per_s": len(papers) / median, "seconds": seconds[variant], **agreement[variant]}
        )
    env = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "model": args.model,
        "docs": len(papers),
        "batch": args.batch,
        "mean_tokens": sum(map(len, seqs)) / len(seqs),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    lines = [
        json.dumps(env),
        "",
        "| variant | fwd+bwd docs/s (median) | rounds, s | pooled max abs diff | adapter grad max rel diff |",
    ]
    lines.append("|---|---|---|---|---|")
    for row in rows:
        rounds = ", ".join(f"{s:.2f}" for s in row["seconds"])
        diffs = f"{row['pooled_max_abs_diff']:.2e} | {row['grad_max_rel_diff']:.2e}"
        lines.append(f"| {row['variant']} | {row['docs_per_s']:.0f} | {rounds} | {diffs} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "packed_train_probe.json").write_text(
            json.dumps({"environment": env, "results": rows}, indent=2) + "\n"
        )
        (args.out / "packed_train_probe.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
