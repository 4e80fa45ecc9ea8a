"""MPNet attention speed: transformers' eager attention against our SDPA attention
(``sciembed.model.mpnet_attention``: relative position bias + padding mask as one float ``attn_mask``,
memory-efficient kernel), and one padded forward against length buckets (the stage-2 training path).

A randomly initialised MPNet with the all-mpnet-base-v2 shape (no weights needed), bf16 autocast as
in training. Measures documents/s for

* forward (eval, no grad) and forward + backward (train mode, dropout on; ``--grad frozen``: only the
  word embeddings train, so the backward computes every activation gradient but almost no weight
  gradient, as for adapters over a frozen base; ``full``: every weight);
* on a batch of full-length sequences and on a batch with the mixture's mixed lengths (padded);
* the mixed batch again as length buckets (``bucket_overhead_tokens``), our attention.

Also checks on the GPU that the two attentions agree (fp32 and bf16 max abs difference) and that the
memory-efficient SDPA kernel accepts our mask (forced with ``sdpa_kernel``). Writes
``mpnet_attention.json`` and ``mpnet_attention.md`` to ``--out``.

    python3 benchmarks/mpnet_attention.py --out $OUT/mpnet_attention          # on one H200
    python3 benchmarks/mpnet_attention.py --device cpu --layers 2 --batch 8 --iters 2 --out /tmp/x   # smoke
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sciembed.model.mpnet_attention import use_sdpa_attention  # noqa: E402
from sciembed.train.multitask.buckets import length_buckets  # noqa: E402


def mixture_lengths(count: int, max_length: int, seed: int = 0) -> list[int]:
    """Lengths like mixture v3's stage-2 sequences: titles and queries (8-40 tokens) and truncated
    title + abstract documents (120 to ``max_length``), about half each."""
    rng = random.Random(seed)
    short, long = (8, max(8, max_length // 6)), (max_length // 2, max_length)
    return [rng.randint(*short) if rng.random() < 0.45 else rng.randint(*long) for _ in range(count)]


def padded(lengths: list[int], device: torch.device, vocab: int, multiple: int = 8) -> dict[str, torch.Tensor]:
    width = -(-max(lengths) // multiple) * multiple
    ids = torch.full((len(lengths), width), 1, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    generator = torch.Generator().manual_seed(len(lengths) * 1000 + width)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(5, vocab, (length,), generator=generator)
        mask[row, :length] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(model, batches: list[dict[str, torch.Tensor]], backward: bool, dtype: torch.dtype | None) -> None:
    autocast = torch.autocast(batches[0]["input_ids"].device.type, dtype=dtype, enabled=dtype is not None)
    with autocast:
        for batch in batches:
            if backward:
                out = model(**batch).last_hidden_state
                (out.float() * batch["attention_mask"][..., None]).mean().backward()
            else:
                with torch.no_grad():
                    model(**batch)
    if backward:
        model.zero_grad(set_to_none=True)


def docs_per_s(model, batches, backward, dtype, device, warmup: int, iters: int) -> tuple[float, float]:
    model.train(backward)
    for _ in range(warmup):
        run_once(model, batches, backward, dtype)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(iters):
        run_once(model, batches, backward, dtype)
    sync(device)
    seconds = time.perf_counter() - start
    docs = sum(int(b["input_ids"].shape[0]) for b in batches) * iters
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return docs / seconds, memory


def build(args, device):
    from transformers import MPNetConfig, MPNetModel

    config = MPNetConfig(
        vocab_size=30527,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=514,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    eager = MPNetModel(config, add_pooling_layer=False).to(device)
    ours = copy.deepcopy(eager)
    assert use_sdpa_attention(ours) == args.layers
    for model in (eager, ours):
        if args.grad == "frozen":
            model.requires_grad_(False)
            model.embeddings.word_embeddings.weight.requires_grad_(True)
    return eager, ours


def agreement(eager, ours, device, vocab) -> dict[str, float]:
    batch = padded(mixture_lengths(16, 256, seed=1), device, vocab)
    out = {}
    eager.eval(), ours.eval()
    with torch.no_grad():
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                a = eager(**batch).last_hidden_state.float()
                b = ours(**batch).last_hidden_state.float()
            keep = batch["attention_mask"].bool()
            out[f"max_abs_diff_{name}"] = float((a - b)[keep].abs().max())
    return out


def efficient_kernel_runs(ours, device, vocab) -> str:
    if device.type != "cuda":
        return "n/a (CPU)"
    from torch.nn.attention import SDPBackend, sdpa_kernel

    batch = padded(mixture_lengths(32, 256, seed=2), device, vocab)
    try:
        with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
            run_once(ours.train(), [batch], True, torch.bfloat16)
        sync(device)
        return "yes"
    except RuntimeError as exc:
        return f"no: {str(exc).splitlines()[0][:200]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=128, help="sequences per forward (stage 2: ~128-200)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--grad", choices=("frozen", "full"), default="frozen")
    parser.add_argument("--bucket-overhead-tokens", type=int, default=2048)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    vocab = 30527
    eager, ours = build(args, device)
    dtype = torch.bfloat16
    full = [padded([args.max_length] * args.batch, device, vocab)]
    lengths = mixture_lengths(args.batch, args.max_length)
    mixed = [padded(lengths, device, vocab)]
    chunks = length_buckets(lengths, args.bucket_overhead_tokens)
    buckets = [padded([lengths[i] for i in b], device, vocab) for b in chunks]
    rows = []
    for label, batches in (("full length", full), ("mixed lengths, one padded batch", mixed)):
        for backward in (False, True):
            for name, model in (("eager", eager), ("sdpa (ours)", ours)):
                rate, memory = docs_per_s(model, batches, backward, dtype, device, args.warmup, args.iters)
                rows.append(
                    {"batch": label, "pass": "fwd+bwd" if backward else "fwd", "attention": name,
                     "docs_per_s": rate, "max_memory_gb": memory}
                )  # fmt: skip
    for backward in (False, True):
        rate, memory = docs_per_s(ours, buckets, backward, dtype, device, args.warmup, args.iters)
        rows.append(
            {"batch": f"mixed lengths, {len(buckets)} length buckets", "pass": "fwd+bwd" if backward else "fwd",
             "attention": "sdpa (ours)", "docs_per_s": rate, "max_memory_gb": memory}
        )  # fmt: skip
    padded_tokens = {
        "one_padded": sum(int(b["input_ids"].numel()) for b in mixed),
        "buckets": sum(int(b["input_ids"].numel()) for b in buckets),
        "real": sum(lengths),
    }
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": vars(args) | {"out": str(args.out)},
        "rows": rows,
        "padded_tokens": padded_tokens,
        "agreement": agreement(eager, ours, device, vocab),
        "efficient_kernel_accepts_our_mask": efficient_kernel_runs(ours, device, vocab),
    }
    base = {(r["batch"], r["pass"]): r["docs_per_s"] for r in rows if r["attention"] == "eager"}
    lines = [
        f"MPNet attention, {result['device']}, torch {result['torch']}, transformers {result['transformers']}, "
        f"{result['date']}; batch {args.batch}, max length {args.max_length}, bf16 autocast, grad {args.grad}",
        "",
        "| batch | pass | attention | docs/s | vs eager (same batch) | max memory GB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        key = (r["batch"], r["pass"])
        ref = base.get(key) or base.get(("mixed lengths, one padded batch", r["pass"]))
        lines.append(
            f"| {r['batch']} | {r['pass']} | {r['attention']} | {r['docs_per_s']:.0f} | "
            f"{r['docs_per_s'] / ref:.2f}x | {r['max_memory_gb']:.1f} |"
        )
    lines += [
        "",
        f"Padded tokens of the mixed batch: one batch {padded_tokens['one_padded']}, buckets "
        f"{padded_tokens['buckets']}, real {padded_tokens['real']}.",
        f"Agreement (max abs difference of the last hidden states, real tokens): {result['agreement']}.",
        f"Memory-efficient kernel accepts our mask: {result['efficient_kernel_accepts_our_mask']}.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mpnet_attention.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "mpnet_attention.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
