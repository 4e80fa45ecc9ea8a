"""FP8 matrix products and compilation on the packed GPU path: speed and agreement with fp32 (issue 16).

    python3 benchmarks/fp8_probe.py --arxiv /root/speed/arxiv-sample.jsonl.gz --minilm /root/stage/minilm \
        --docs 20000 --out $OUT/fp8

For each model (the BERT-base-sized random model of ``embed_speed.py`` and, with ``--minilm``, real
MiniLM weights) and each variant (dtype, ``EncodeOptions(fp8=)``, ``compile``), in one process: the
end-to-end ``encode`` rate over ``--docs`` real abstracts (default options otherwise), the GPU-only
rate of the packed forward over the same batches already on the device, and the min / mean cosine
of the first ``--check`` documents' vectors to the fp32 padded forward. Prints a markdown table and
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import embed_speed  # noqa: E402

from sciembed import EncodeOptions  # noqa: E402
from sciembed.model import fused_norm  # noqa: E402
from sciembed.model import packed as packed_module  # noqa: E402
from sciembed.model.encoder import SciEmbedModel  # noqa: E402
from sciembed.model.fp8 import FP8_PRODUCTS  # noqa: E402
from sciembed.model.packed import pack  # noqa: E402
from sciembed.model.triton_attention import TileConfig  # noqa: E402

VARIANTS = {  # name: (dtype, FP8 products (None: none), torch.compile mode (False: eager))
    "fp16": ("fp16", None, False),
    "bf16": ("bf16", None, False),
    "bf16+fp8": ("bf16", FP8_PRODUCTS, False),
    "fp16+fp8": ("fp16", FP8_PRODUCTS, False),
    "bf16+fp8ffn": ("bf16", ("intermediate", "output"), False),
    "bf16+compile": ("bf16", None, None),
    "fp16+compile": ("fp16", None, None),
    "bf16+fp8+compile": ("bf16", FP8_PRODUCTS, None),
    "fp16+compile-autotune": ("fp16", None, "max-autotune-no-cudagraphs"),
    # the FFN's bias + GELU in cuBLASLt's GEMM epilogue, eager and compiled: every variant
    # without "gelu-epilogue" runs the separate GELU kernel
    "fp16+gelu-epilogue": ("fp16", None, False),
    "fp16+gelu-epilogue+compile": ("fp16", None, None),
    # and each residual add + LayerNorm as one Triton kernel (under torch.compile the library leaves
    # them to inductor, so "+compile" above is already the compiled default): the library's default
    # since 2026-12-01 late
    "fp16+gelu-epilogue+fused-norm": ("fp16", None, False),
    # and the adapter's residual add summed inside the block's final add + LayerNorm kernel, its
    # scaling of 1.0 skipped: the library's default since 2026-12-02 ("fused-norm" alone: before it)
    "fp16+gelu-epilogue+fused-norm+adapter-add": ("fp16", None, False),
}


LIBRARY_INTERMEDIATE = packed_module.intermediate_forward
LIBRARY_ADD_NORM = packed_module.add_layer_norm
LIBRARY_FIRST_TOKENS_ONLY = SciEmbedModel.first_tokens_only
LIBRARY_TILES = (dict(packed_module.ATTENTION_TILES), dict(packed_module.FIRST_TOKEN_TILES))
LIBRARY_NORM = dict(fused_norm.NORM_LAUNCH)
# Modifiers after a variant's name (``fp16+gelu-epilogue+fused-norm+adapter-add+first-tokens+tiles=64x64w4s2``):
#   +first-tokens: CLS pooling's last layer for each document's first token only (since 2026-12-02);
#     without it, the whole last layer runs and the first tokens' rows are selected afterwards
#   +tiles=MxNwWsS: attention through sciembed's Triton kernel with those tiles for every head size
#     (first-token queries: 16 x N); +tiles=library: the library's table; without it: FlashAttention-2
#   +norm=RxW: the fused add + LayerNorm kernel with R rows per program and W warps for every hidden
#     size; without it: the library's table
MODIFIERS = ("+first-tokens", "+tiles=", "+norm=")


def _separate_gelu(block, hidden):
    return block(hidden)  # the FFN's dense (bias in cuBLAS's epilogue), then a separate GELU kernel


def _adapter_apart(x, extra):
    # before 2026-12-02: the adapter's x scaling (1.0 here) and residual add as kernels of their own
    return x if extra is None else (x * 1.0) + extra


def _separate_add_norm(x, residual, ln, extra=None):
    return ln(_adapter_apart(x, extra) + residual)  # add kernels, then PyTorch's LayerNorm kernel


def _fused_norm_adapter_apart(x, residual, ln, extra=None):
    return LIBRARY_ADD_NORM(_adapter_apart(x, extra), residual, ln)


def base_variant(variant: str) -> str:
    """The variant's name without the modifiers (its key in VARIANTS)."""
    cut = min((i for i in (variant.find(m) for m in MODIFIERS) if i >= 0), default=len(variant))
    return variant[:cut]


def attention_and_last_layer(variant: str) -> None:
    """Apply the ``+first-tokens``, ``+tiles=`` and ``+norm=`` modifiers (see MODIFIERS)."""
    first = "+first-tokens" in variant
    SciEmbedModel.first_tokens_only = LIBRARY_FIRST_TOKENS_ONLY if first else (lambda self, packed: False)
    norm = dict(LIBRARY_NORM)
    if "+norm=" in variant:
        rows, warps = variant.split("+norm=")[1].split("+")[0].split("x")
        norm = {size: fused_norm.NormLaunch(int(rows), int(warps)) for size in (384, 768, 1024)}
    fused_norm.NORM_LAUNCH = norm  # the library reads its tables at call time
    tiles, first = {}, {}
    if "+tiles=" in variant:
        spec = variant.split("+tiles=")[1].split("+")[0]
        if spec == "library":
            tiles, first = dict(LIBRARY_TILES[0]), dict(LIBRARY_TILES[1])
        else:
            chosen = TileConfig.from_spec(spec)
            tiles = dict.fromkeys((16, 32, 64, 128), chosen)
            first = dict.fromkeys((16, 32, 64, 128), chosen._replace(block_m=16))
    packed_module.ATTENTION_TILES, packed_module.FIRST_TOKEN_TILES = tiles, first


def library_kernels(variant: str) -> None:
    """The library's packed forward puts GELU into the FFN GEMM's epilogue and runs each residual add +
    LayerNorm as one Triton kernel on CUDA (since 2026-12-01 late), the adapter's residual add inside
    the last one (since 2026-12-02); variants without "gelu-epilogue" / "fused-norm" / "adapter-add"
    restore the separate kernels for the comparison (benchmark only; the adapter's scaling is 1.0)."""
    packed_module.intermediate_forward = LIBRARY_INTERMEDIATE if "gelu-epilogue" in variant else _separate_gelu
    if "fused-norm" not in variant:
        packed_module.add_layer_norm = _separate_add_norm
    else:
        packed_module.add_layer_norm = LIBRARY_ADD_NORM if "adapter-add" in variant else _fused_norm_adapter_apart


def device_batches(model, papers, max_tokens: int = 65536):
    """Length-sorted packed batches on the GPU, and the input position of each row."""
    seqs = model.tokenize(model.texts(papers))
    order = np.argsort([len(s) for s in seqs], kind="stable")
    batches, current, tokens = [], [], 0
    for i in order:
        if current and tokens + len(seqs[i]) > max_tokens:
            batches.append(pack([seqs[j] for j in current], device="cuda"))
            current, tokens = [], 0
        current.append(i)
        tokens += len(seqs[i])
    if current:
        batches.append(pack([seqs[j] for j in current], device="cuda"))
    return batches, order


def packed_vectors(model, papers, fp8) -> np.ndarray:
    batches, order = device_batches(model, papers)
    with torch.inference_mode():
        rows = torch.cat([model.forward_packed(b, format="proximity", fp8=fp8).float() for b in batches])
    out = np.empty((len(papers), rows.shape[1]), dtype=np.float32)
    out[order] = rows.cpu().numpy()
    return out


def gpu_only(model, batches, fp8, repeats: int) -> float:
    with torch.inference_mode():
        for b in batches[:3]:
            model.forward_packed(b, format="proximity", fp8=fp8)
        torch.cuda.synchronize()
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            docs = 0
            for b in batches:
                model.forward_packed(b, format="proximity", fp8=fp8)
                docs += b.batch
            torch.cuda.synchronize()
            best = max(best, docs / (time.perf_counter() - start))
    return best


def cosines(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = (a * b).sum(axis=1)
    return float(c.min()), float(c.mean())


def minilm_sized_model(seed: int = 0):
    """all-MiniLM-L6-v2's shape (6 layers, 384 wide, 12 heads of 32, mean pooling + L2) with random
    weights and a proximity adapter: its speed without carrying the weights (``--minilm``: the
    tokenizer folder)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from sciembed.model import SciEmbedConfig, SciEmbedModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    )
    base = BertModel(config, add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(embed_speed._MINILM_OVERRIDE))
    settings = SciEmbedConfig(pooling="mean", normalize=True, max_length=256, name="minilm-sized-random")
    model = SciEmbedModel(base, tokenizer, settings)
    model.add_adapter("proximity")
    return model.eval()


def probe(name: str, build, papers, args) -> list[dict]:
    model = build()
    model.place("cuda", "fp32")
    check = papers[: args.check]
    reference = model.encode(check, format="proximity", options=EncodeOptions(packed=False, batch_size=64))
    rows = []
    for variant in args.variants.split(","):
        dtype, products, mode = VARIANTS[base_variant(variant)]
        model.place("cuda", dtype)
        model.uncompile_packed()
        library_kernels(variant)
        attention_and_last_layer(variant)
        if mode is not False:
            model.compile_packed(mode=mode)
        row = {"model": name, "variant": variant}
        try:
            start = time.perf_counter()
            layers = model.fp8_layers(products) if products else None
            # end to end through encode where the options can say it (all products in FP8 or none)
            options = EncodeOptions(fp8=products == FP8_PRODUCTS)
            end_to_end = products in (None, FP8_PRODUCTS)
            if end_to_end:
                model.encode(papers[:2000], format="proximity", options=options)  # warm-up (and compilation)
            else:
                packed_vectors(model, papers[:2000], layers)
            row["warmup_s"] = round(time.perf_counter() - start, 1)
            rates = []
            for _ in range(args.repeats if end_to_end else 0):
                torch.cuda.synchronize()
                start = time.perf_counter()
                model.encode(papers, format="proximity", options=options)
                rates.append(len(papers) / (time.perf_counter() - start))
            row["docs_per_s"] = [round(r) for r in rates]
            vectors = packed_vectors(model, check, layers)
            row["cos_min"], row["cos_mean"] = cosines(vectors, reference)
            row["gpu_only_docs_per_s"] = round(gpu_only(model, device_batches(model, papers)[0], layers, args.repeats))
        except Exception as exc:  # noqa: BLE001  a variant this build cannot run: say why, go on
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(json.dumps(row), flush=True)
        rows.append(row)
    library_kernels("gelu-epilogue+fused-norm+adapter-add")
    attention_and_last_layer("+first-tokens+tiles=library")
    del model
    torch.cuda.empty_cache()
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Bars: end-to-end (best round) and GPU-only docs/s per variant, each labelled with its min cosine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "error" not in r]
    labels = [f"{r['model']}\n{r['variant']}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4.5))
    ends = [max(r["docs_per_s"]) if r["docs_per_s"] else 0 for r in rows]
    ax.bar(x - 0.2, ends, 0.4, label="encode, end to end (best round)")
    ax.bar(x + 0.2, [r["gpu_only_docs_per_s"] for r in rows], 0.4, label="packed forward, GPU only")
    for i, r in enumerate(rows):
        ax.annotate(f"cos {r['cos_min']:.4f}", (i, max(ends[i], r["gpu_only_docs_per_s"])), ha="center", va="bottom")
    ax.axhline(10000, color="grey", linestyle="--", linewidth=1, label="goal 10,000 docs/s")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("documents / s")
    ax.set_title("FP8 and compilation on the packed path (min cosine to fp32 above the bars)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arxiv", type=Path, required=True)
    parser.add_argument("--minilm", type=Path, default=None, help="a MiniLM model folder (real weights)")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--check", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--models", default="bert-base,minilm")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--replot", action="store_true", help="only redraw OUT/fp8_probe.png from OUT/fp8_probe.json")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads((args.out / "fp8_probe.json").read_text())["rows"], args.out / "fp8_probe.png")
        return
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    embed_speed._MINILM_OVERRIDE = args.minilm
    rows = []
    for name in args.models.split(","):
        if name == "minilm" and args.minilm is None:
            continue
        build = {
            "bert-base": embed_speed.bert_base_model,
            "minilm": embed_speed.minilm_model,
            "minilm-random": minilm_sized_model,
        }[name]
        rows += probe(name, build, papers, args)
    meta = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "docs": len(papers),
        "command": " ".join(sys.argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fp8_probe.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "| model | variant | docs/s (end to end) | GPU-only docs/s | cos min | cos mean | warm-up s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['variant']} | error: {r['error'][:120]} | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['variant']} | {', '.join(map(str, r['docs_per_s'])) or '-'} "
            f"| {r['gpu_only_docs_per_s']} "
            f"| {r['cos_min']:.6f} | {r['cos_mean']:.6f} | {r['warmup_s']} |"
        )
    table = "\n".join(lines)
    (args.out / "fp8_probe.md").write_text(f"{json.dumps(meta)}\n\n{table}\n")
    plot(rows, args.out / "fp8_probe.png")
    print(table)


if __name__ == "__main__":
    main()
