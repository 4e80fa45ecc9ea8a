"""Which of a layer's matrix products tolerate FP8, on real weights, on the CPU (issue 16).

    python benchmarks/fp8_products_cpu.py --arxiv out/carry/speed/arxiv-sample.jsonl.gz \
        --model models/sciembed-minilm --docs 200

torch's CPU ``_scaled_mm`` computes the same rounded products as the GPU's FP8 tensor cores (float8
e4m3 inputs, float32 accumulation), so the agreement of FP8 variants with the fp32 packed forward
can be measured here on the shipped model; only the speed needs the GPU (``fp8_probe.py``). Prints
the min / mean cosine to fp32 of bf16 without FP8 and of each set of products in FP8.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import embed_speed  # noqa: E402

from sciembed.model import load_model  # noqa: E402
from sciembed.model.fp8 import FP8_PRODUCTS  # noqa: E402
from sciembed.model.packed import pack  # noqa: E402

SETS = [
    ("qkv",),
    ("attention_out",),
    ("intermediate",),
    ("output",),
    ("intermediate", "output"),
    ("qkv", "intermediate"),
    FP8_PRODUCTS,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arxiv", type=Path, required=True)
    parser.add_argument("--model", default="models/sciembed-minilm")
    parser.add_argument("--format", default="proximity")
    parser.add_argument("--docs", type=int, default=200)
    args = parser.parse_args()
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    model = load_model(args.model).eval()
    seqs = model.tokenize(model.texts(papers))
    batches = [pack(seqs[i : i + 32]) for i in range(0, len(seqs), 32)]

    def vectors(m, fp8=None) -> torch.Tensor:
        rows = [m.forward_packed(b, format=args.format, fp8=fp8).float() for b in batches]
        return torch.nn.functional.normalize(torch.cat(rows), dim=-1)

    def report(name: str, found: torch.Tensor) -> None:
        cosine = (reference * found).sum(-1)
        print(f"{name}: cos min {cosine.min():.6f} mean {cosine.mean():.6f}", flush=True)

    with torch.inference_mode():
        reference = vectors(model)
        report("bf16 (no fp8)", vectors(model.copy_as("bf16")))
        for products in SETS:
            report("+".join(products), vectors(model, model.fp8_layers(products)))


if __name__ == "__main__":
    main()
