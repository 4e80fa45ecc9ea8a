"""Training speed: the trainer's step path against a plain PyTorch loop, on the same triplets and model.

(a) plain: fp32, no autocast, batches in file order padded to the longest document, one forward of
    the batch's 3 x B documents, triplet loss, AdamW (default implementation);
(b) trainer: ``sciembed.train.Trainer.train_step`` on the same triplets in the trainer's length-grouped
    order (bf16 autocast on CUDA, fused AdamW, pinned non-blocking copies, gradient clipping).

Both get the same pre-tokenised triplets (tokenising is not timed) and run one pass over them after
a few warm-up steps. Prints a table; writes ``train_speed.json`` and ``train_speed.png``.

    python benchmarks/train_speed.py --model minilm --tokens runs/gpu/train.tok.npz --init runs/gpu/minilm-fp16
    python benchmarks/train_speed.py --model bert-base --tokens runs/gpu/train.tok.npz
    python benchmarks/train_speed.py --model tiny --steps 4 --batch-size 8      # CPU smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sciembed.train.config import BaseTrainConfig, OptimConfig  # noqa: E402
from sciembed.train.loop import Trainer  # noqa: E402
from sciembed.train.losses import triplet_margin_loss  # noqa: E402
from sciembed.train.stage1 import (  # noqa: E402
    TokenizedTriplets,
    TripletTask,
    collate_ids,
    load_tokens,
    plan_chunks,
    tokenize_triplets,
)

WORDS = "graph neural citation parsing translation speech protein retrieval summary embedding attention corpus".split()


def build_model(kind: str, init: str | None, max_length: int):
    from sciembed.model import SciEmbedConfig, SciEmbedModel

    if kind == "minilm":
        from sciembed.train.stage1 import load_init_model

        model = load_init_model(init or "all-minilm-l6-v2")
    else:
        from transformers import AutoTokenizer, BertConfig, BertModel

        from sciembed.model.default_model import minilm_path

        tokenizer_source = init or str(minilm_path(verify=False))  # --init: any folder with the tokenizer
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        torch.manual_seed(0)
        if kind == "bert-base":  # BERT-base sized, random weights
            config = BertConfig(vocab_size=tokenizer.vocab_size, attn_implementation="sdpa")
        else:  # tiny: CPU smoke test
            config = BertConfig(
                vocab_size=tokenizer.vocab_size,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=37,
                attn_implementation="sdpa",
            )
        base = BertModel(config, add_pooling_layer=False)
        model = SciEmbedModel(base, tokenizer, SciEmbedConfig(pooling="cls", name=kind))
    model.config.max_length = max_length
    return model.place("cpu", "fp32")


def synthetic_triplets(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)

    def paper(i: int) -> dict:
        return {
            "corpus_id": str(i),
            "title": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))),
            "abstract": " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 200))),
        }

    with open(path, "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"query": paper(3 * i), "pos": paper(3 * i + 1), "neg": paper(3 * i + 2)}) + "\n")


def subset(data: TokenizedTriplets, n: int) -> TokenizedTriplets:
    return TokenizedTriplets(docs=data.docs, lengths=data.lengths, triplets=data.triplets[:n], truncated=0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def run_plain(model, data: TokenizedTriplets, batch_size: int, warmup: int, device: torch.device, lr: float) -> dict:
    """The plain loop: fp32, file order, pad to longest, default AdamW."""
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    pad = int(model.tokenizer.pad_token_id or 0)
    batches = [data.triplets[i : i + batch_size] for i in range(0, len(data.triplets) - batch_size + 1, batch_size)]

    def step(rows: np.ndarray) -> None:
        docs = [data.docs[i] for i in rows.T.reshape(-1)]
        batch = {k: v.to(device) for k, v in collate_ids(docs, pad).items()}
        emb = model(batch["input_ids"], batch["attention_mask"])
        q, p, n = emb.split(len(rows))
        loss = triplet_margin_loss(q, p, n, 1.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for rows in batches[:warmup]:
        step(rows)
    sync(device)
    reset_memory(device)
    start = time.perf_counter()
    for rows in batches:
        step(rows)
    sync(device)
    seconds = time.perf_counter() - start
    triplets = len(batches) * batch_size
    return _result("plain (fp32, file order)", triplets, seconds, data, batches, device)


def run_trainer(model, data: TokenizedTriplets, batch_size: int, warmup: int, device: torch.device, lr: float,
                checkpointing: bool) -> dict:  # fmt: skip
    """The trainer's step path (Trainer.train_step on the task's length-grouped batches)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = BaseTrainConfig(
            output_dir=tmp,
            train_triplets="(pre-tokenised)",
            batch_size=batch_size,
            device=str(device),
            progress=False,
            gradient_checkpointing=checkpointing,
            optim=OptimConfig(lr=lr, warmup_ratio=0.0),
        )
        task = TripletTask(model, data, config, device)
        trainer = Trainer(config, task.module, task, log=lambda _: None)
        batches = list(task.batches(0))
        for batch in batches[:warmup]:
            trainer.train_step(batch)
        sync(device)
        reset_memory(device)
        start = time.perf_counter()
        for batch in batches:
            trainer.train_step(batch)
        sync(device)
        seconds = time.perf_counter() - start
    plan = [data.triplets[b] for b in batches]
    name = "trainer (" + ("bf16 autocast, " if trainer.use_bf16 else "fp32, ") + "length-grouped)"
    return _result(name, len(batches) * batch_size, seconds, data, plan, device, config.max_forward_chunks)


def _result(name, triplets, seconds, data, batches, device, max_chunks: int = 1) -> dict:
    real = padded = 0
    for rows in batches:
        lengths = data.lengths[rows.T.reshape(-1)]
        real += int(lengths.sum())
        padded += sum(int(lengths[c].max()) * len(c) for c in plan_chunks(lengths, max_chunks))
    return {
        "name": name,
        "triplets": triplets,
        "seconds": seconds,
        "triplets_per_s": triplets / seconds,
        "peak_memory_gb": peak_memory_gb(device),
        "padding_share": 1 - real / padded if padded else 0.0,
    }


def plot(results: list[dict], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no PNG)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    names = [r["name"] for r in results]
    axes[0].barh(names, [r["triplets_per_s"] for r in results], color=["#999999", "#1f77b4"])
    axes[0].set_xlabel("triplets / s")
    memory = [r["peak_memory_gb"] or 0 for r in results]
    axes[1].barh(names, memory, color=["#999999", "#1f77b4"])
    axes[1].set_xlabel("peak GPU memory (GiB)")
    axes[1].set_yticklabels([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["minilm", "bert-base", "tiny"], default="minilm")
    parser.add_argument("--init", help="model folder (minilm: e.g. runs/gpu/minilm-fp16); tokenizer source otherwise")
    parser.add_argument("--triplets", default="runs/triplets-acl/train.jsonl", help="triplets JSON lines")
    parser.add_argument("--tokens", help="pre-tokenised triplets (.npz from `python -m sciembed.train tokenize`)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=150, help="timed steps (the same triplets for both)")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model(args.model, args.init, args.max_length)
    needed = args.batch_size * (args.steps + args.warmup_steps)
    data = load_tokens(args.tokens) if args.tokens else None
    source = args.tokens
    if data is None:
        path = Path(args.triplets)
        if not path.is_file():
            path = Path(tempfile.mkdtemp()) / "synthetic.jsonl"
            synthetic_triplets(path, needed)
        data = tokenize_triplets(model, path, limit=needed)
        source = str(path)
    if len(data.triplets) < needed:
        raise SystemExit(f"need {needed} triplets, {source} has {len(data.triplets)}")
    data = subset(data, needed)
    # the same initial weights for both runs
    initial = copy.deepcopy(model.state_dict())
    plain = run_plain(model, data, args.batch_size, args.warmup_steps, device, args.lr)
    model = model.cpu()
    model.load_state_dict(initial)
    reset_memory(device)
    trainer = run_trainer(model, data, args.batch_size, args.warmup_steps, device, args.lr, args.gradient_checkpointing)
    ratio = trainer["triplets_per_s"] / plain["triplets_per_s"]
    report = {
        "model": args.model,
        "init": args.init,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": source,
        "triplets": len(data.triplets),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "results": [plain, trainer],
        "speedup": ratio,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"train_speed_{args.model}_{device.type}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report["results"], out / f"{stem}.png", f"{args.model}, batch {args.batch_size}, {report['device']}")
    print(f"{args.model} ({report['parameters'] / 1e6:.1f}M parameters), batch {args.batch_size}, "
          f"max_length {args.max_length}, {report['device']}")  # fmt: skip
    print(f"| {'loop':40s} | triplets/s | peak GPU memory | padding |")
    print(f"|{'-' * 42}|------------|-----------------|---------|")
    for r in report["results"]:
        memory = f"{r['peak_memory_gb']:.2f} GiB" if r["peak_memory_gb"] is not None else "-"
        print(f"| {r['name']:40s} | {r['triplets_per_s']:10.1f} | {memory:>15s} | {r['padding_share']:6.1%} |")
    print(f"speed-up: {ratio:.2f}x  (written: {out / stem}.json / .png)")


if __name__ == "__main__":
    main()
