"""Attention kernels for packed (variable-length) documents on the GPU: which is fastest (issue 16).

    python3 benchmarks/attention_probe.py --arxiv /root/speed/arxiv-sample.jsonl.gz \
        --tokenizer /root/speed/bert-tok --docs 20000 --out $OUT/attention

The late-round profile put FlashAttention-2's variable-length kernel (what ``packed_attention``
calls) at 21-22 us of the ~100 us per document that 10,000 docs/s allows. This measures, on the
real token lengths of ``--docs`` arXiv abstracts in length-sorted packed batches of at most 65,536
real tokens (the engine's budget; it cuts per tokenisation group, so its batch edges differ a little)
and BERT-base's shape (12 heads of 64, 12 layers), the attention-only time per document
of every kernel torch offers for ragged batches:

* ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` (FlashAttention-2), the path before 2026-12-02;
* ``fa2-direct``: the same kernel called as ``aten._flash_attention_forward`` (no custom-op wrapper);
* ``cudnn-ragged``: ``aten._cudnn_attention_forward`` on the ragged batch;
* ``njt-<backend>``: SDPA on a nested jagged tensor under one backend (flash, efficient, cudnn);
* ``triton-MxN-wW-sS``: sciembed's own kernel (``sciembed.model.triton_attention``) with M x N tiles,
  W warps, S stages (``--tiles``);
* ``first-*``: the last layer's attention under CLS pooling (one query per document, all its keys),
  FlashAttention-2 against the Triton kernel with 16-row query tiles;

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

LAYERS = 12
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


def fa2_direct(q, k, v, cu, max_len):
    return torch.ops.aten._flash_attention_forward(q, k, v, cu, cu, max_len, max_len, 0.0, False, False)[0]


def cudnn_ragged(q, k, v, cu, max_len):
    out = torch.ops.aten._cudnn_attention_forward(q, k, v, None, cu, cu, max_len, max_len, False, 0.0, False, False)
    return out[0]


def njt(backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = getattr(SDPBackend, backend)

    def run(q, k, v, cu, max_len):
        def nested(x):
            return torch.nested.nested_tensor_from_jagged(x.contiguous(), cu.long(), max_seqlen=max_len).transpose(1, 2)

        with sdpa_kernel([chosen]):
            out = F.scaled_dot_product_attention(nested(q), nested(k), nested(v))
        return out.transpose(1, 2).values()

    return run


def triton_tiles(spec: str):
    """``64x32w4s2`` -> the library's kernel with those tiles."""
    from sciembed.model.triton_attention import TileConfig, launch_varlen_attention

    tiles = TileConfig.from_spec(spec)

    def run(q, k, v, cu, max_len):
        return launch_varlen_attention(q, k, v, cu, max_len, tiles)

    return run


def library(q, k, v, cu, max_len):
    """What ``packed_attention`` runs now (its kernel choice and tiles)."""
    from sciembed.model.packed import Packed, packed_attention

    return packed_attention(q, k, v, Packed(None, None, None, cu, max_len, cu.shape[0] - 1))


def first_varlen(q, k, v, cu, max_len):
    from torch.nn.attention.varlen import varlen_attn

    one = torch.arange(cu.shape[0], dtype=torch.int32, device=cu.device)
    return varlen_attn(q[cu[:-1].long()], k, v, one, cu, 1, max_len)


def first_triton(spec: str):
    from sciembed.model.triton_attention import TileConfig, launch_varlen_attention

    tiles = TileConfig.from_spec(f"16x{spec}")

    def run(q, k, v, cu, max_len):
        one = torch.arange(cu.shape[0], dtype=torch.int32, device=cu.device)
        return launch_varlen_attention(q[cu[:-1].long()], k, v, cu, max_len, tiles, one, 1)

    return run


KERNELS = {
    "varlen": varlen,
    "fa2-direct": fa2_direct,
    "cudnn-ragged": cudnn_ragged,
    "njt-flash": njt("FLASH_ATTENTION"),
    "library": library,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arxiv", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True, help="a folder with a Hugging Face tokenizer")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16"])
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument(
        "--tiles",
        default="64x64w4s2,64x32w4s2,128x64w8s2,128x32w4s2,64x64w4s3,128x128w8s2,32x64w4s2,64x128w4s2",
        help="Triton tile configs MxNwWsS to measure",
    )
    parser.add_argument("--first-tiles", default="64w4s2,32w4s2,128w4s2", help="first-token configs NwWsS")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    heads, head_dim = args.heads, args.head_dim
    kernels = dict(KERNELS)
    kernels.update({f"triton-{t}": triton_tiles(t) for t in args.tiles.split(",") if t})
    kernels["first-varlen"] = first_varlen
    kernels.update({f"first-triton-{t}": first_triton(t) for t in args.first_tiles.split(",") if t})

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
        # views of one (T, 3, heads, head_dim) projection, as the model's q, k, v are
        q, k, v = torch.randn(cu[-1].item(), 3, heads, head_dim, device=device, dtype=dtype).unbind(1)
        inputs.append((q, k, v, cu, max(batch)))
    # FLOPs of QK^T and PV over real tokens only
    flops = sum(4 * n * n * heads * head_dim for n in lengths) * LAYERS

    rows, reference = [], None
    for name, kernel in kernels.items():
        row = {"kernel": name}
        try:
            for x in inputs:  # warm-up: plans, and Triton's variants per longest document
                kernel(*x)
            checked = [inputs[0], inputs[-1]]  # the shortest and the longest documents
            outs = [kernel(*x) for x in checked]
            torch.cuda.synchronize()
            if reference is None:
                reference = outs
            if name.startswith("first-"):  # the reference's rows of each document's first token
                want = [r[x[3][:-1].long()] for r, x in zip(reference, checked, strict=True)]
            else:
                want = reference
            diffs = [float((a.float() - b.float()).abs().max()) for a, b in zip(outs, want, strict=True)]
            row["max_abs_diff_vs_varlen"] = max(diffs)
            best = float("inf")
            for _ in range(args.repeats):
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(1 if name.startswith("first-") else LAYERS):  # first-*: the last layer only
                    for x in inputs:
                        kernel(*x)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            row["us_per_doc"] = round(best / len(lengths) * 1e6, 2)
            if not name.startswith("first-"):
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
        "shape": f"{LAYERS} layers x {heads} heads x {head_dim}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attention_probe.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\n{meta}\n")
    print("| kernel | us per document (12 layers; first-*: the last layer) | TFLOP/s | max abs diff vs varlen |")
    print("|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['kernel']} | {r['error'][:120]} | | |")
        else:
            tflops = r.get("tflops", "")
            print(f"| {r['kernel']} | {r['us_per_doc']} | {tflops} | {r['max_abs_diff_vs_varlen']:.2e} |")


if __name__ == "__main__":
    main()
