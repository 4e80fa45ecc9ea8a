"""Attention kernels for packed (variable-length) documents on the GPU: which is fastest (issue 16).

    python3 benchmarks/attention_probe.py --arxiv /root/speed/arxiv-sample.jsonl.gz \
        --tokenizer /root/speed/bert-tok --docs 20000 --out $OUT/attention

The late-round profile put FlashAttention-2's variable-length kernel (what ``packed_attention``
calls) at 21-22 us of the ~100 us per document that 10,000 docs/s allows. This measures, on the
real token lengths of ``--docs`` arXiv abstracts in length-sorted packed batches of at most 65,536
real tokens (the engine's budget; it cuts per tokenisation group, so its batch edges differ a little)
and BERT-base's shape (12 heads of 64, 12 layers), the attention-only time per document
of every kernel torch offers for ragged batches:

* ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` (FlashAttention-2), today's path;
* ``njt-<backend>``: SDPA on a nested jagged tensor under one backend (flash, efficient, cudnn);

each checked against ``varlen`` (max absolute difference). Random q, k, v of unit scale stand in for
the activations: the kernels' cost does not depend on the values. Prints a markdown table and writes
``attention_probe.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import embed_speed  # noqa: E402

HEADS, HEAD_DIM, LAYERS = 12, 64, 12
BUDGET = 65536  # the engine's packed token budget per batch on CUDA


def batches_of(lengths: list[int], budget: int) -> list[list[int]]:
    """Length-sorted packed batches of at most ``budget`` real tokens."""
    out, current, total = [], [], 0
    for n in sorted(lengths):
        if current and total + n > budget:
            out.append(current)
            current, total = [], 0
        current.append(n)
        total += n
    if current:
        out.append(current)
    return out


def varlen(q, k, v, cu, max_len):
    from torch.nn.attention.varlen import varlen_attn

    return varlen_attn(q, k, v, cu, cu, max_len, max_len)


def njt(backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = getattr(SDPBackend, backend)

    def run(q, k, v, cu, max_len):
        def nested(x):
            return torch.nested.nested_tensor_from_jagged(x, cu.long(), max_seqlen=max_len).transpose(1, 2)

        with sdpa_kernel([chosen]):
            out = F.scaled_dot_product_attention(nested(q), nested(k), nested(v))
        return out.transpose(1, 2).values()

    return run


KERNELS = {
    "varlen": varlen,
    "njt-flash": njt("FLASH_ATTENTION"),
    "njt-efficient": njt("EFFICIENT_ATTENTION"),
    "njt-cudnn": njt("CUDNN_ATTENTION"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arxiv", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="a folder with a Hugging Face tokenizer")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer))
    texts = [p["title"] + tokenizer.sep_token + p["abstract"] for p in papers]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=512)["input_ids"]]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    device = torch.device("cuda")
    inputs = []
    for batch in batches_of(lengths, BUDGET):
        cu = torch.tensor([0, *torch.tensor(batch).cumsum(0).tolist()], dtype=torch.int32, device=device)
        qkv = torch.randn(3, cu[-1].item(), HEADS, HEAD_DIM, device=device, dtype=dtype)
        inputs.append((qkv[0], qkv[1], qkv[2], cu, max(batch)))
    # FLOPs of QK^T and PV over real tokens only
    flops = sum(4 * n * n * HEADS * HEAD_DIM for n in lengths) * LAYERS

    rows, reference = [], None
    for name, kernel in KERNELS.items():
        row = {"kernel": name}
        try:
            outs = [kernel(*x) for x in inputs[:2]]  # warm-up (and plans)
            torch.cuda.synchronize()
            if reference is None:
                reference = outs
            diffs = [float((a - b).abs().max()) for a, b in zip(outs, reference, strict=True)]
            row["max_abs_diff_vs_varlen"] = max(diffs)
            best = float("inf")
            for _ in range(args.repeats):
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(LAYERS):
                    for x in inputs:
                        kernel(*x)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            row["us_per_doc"] = round(best / len(lengths) * 1e6, 2)
            row["tflops"] = round(flops / best / 1e12, 1)
        except Exception as exc:  # noqa: BLE001  a kernel this build cannot run here: say why, go on
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(json.dumps(row), flush=True)
        rows.append(row)

    meta = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "docs": len(lengths),
        "mean_tokens": sum(lengths) / len(lengths),
        "batches": len(inputs),
        "dtype": args.dtype,
        "shape": f"{LAYERS} layers x {HEADS} heads x {HEAD_DIM}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attention_probe.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\n{meta}\n")
    print("| kernel | us per document (12 layers) | TFLOP/s | max abs diff vs varlen |")
    print("|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['kernel']} | {r['error'][:120]} | | |")
        else:
            print(f"| {r['kernel']} | {r['us_per_doc']} | {r['tflops']} | {r['max_abs_diff_vs_varlen']:.2e} |")


if __name__ == "__main__":
    main()
