"""Quality guard for the GPU fast path: sciembed-lite scores from GPU bf16 embeddings vs CPU fp32.

The GPU machine has neither the lite data nor pytrec-eval, so the guard runs in three steps:

    # 1. CPU: score the model in fp32 and record every text each task embeds (and in which format)
    python benchmarks/quality_guard_gpu.py collect --model models/sciembed-minilm --out out/carry/guard
    # 2. GPU: embed those texts with the fast path (bf16, packed) -> vectors.npz
    python benchmarks/quality_guard_gpu.py embed --texts out/carry/guard/texts.jsonl.gz --out $OUT
    # 3. CPU: score the GPU vectors with the same tasks and compare
    python benchmarks/quality_guard_gpu.py score --guard out/carry/guard --vectors vectors.npz

Step 3 feeds the GPU vectors to ``sciembed.evaluate`` through its embedding cache (under a separate
fingerprint); a text without a GPU vector is an error, so every score comes from GPU embeddings.
Writes ``guard.md`` / ``guard.json``: per task the fp32 and bf16 main scores and their difference,
against the issue's limit (0.3 points).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LIMIT = 0.3


def _lite(cache_dir: str | Path | None, wrapped, seen: dict | None = None) -> dict[str, dict]:
    """Main scores of every lite task; ``seen`` collects the (format, text) pairs the tasks embed."""
    from sciembed.evaluate import evaluate_task, load_task_data, load_tasks
    from sciembed.evaluate.benchmark import Embedder

    class Recording(Embedder):
        def embed(self, items, format, fields):
            if seen is not None:
                for text in self.model.texts(list(items.values()), fields):
                    seen[(format, text)] = None
            return super().embed(items, format, fields)

    embedder = Recording(wrapped, cache_dir)
    scores = {}
    for task in load_tasks("lite"):
        result = evaluate_task(task, load_task_data(task), wrapped, embedder)
        if result.get("status") != "ok":
            raise RuntimeError(f"{task.name}: {result.get('status')} ({result.get('reason', '')})")
        scores[task.name] = {"metric": result["main_metric"], "score": result["main_score"]}
        print(f"  {task.name}: {result['main_metric']} {result['main_score']:.2f}", file=sys.stderr)
    return scores


def _eval_model(path: str):
    from sciembed.evaluate import SciEmbedEvalModel
    from sciembed.model import load_model

    return SciEmbedEvalModel(load_model(path), name=path, device="cpu", batch_size=32)


def collect(args: argparse.Namespace) -> None:
    wrapped = _eval_model(args.model)
    seen: dict[tuple[str, str], None] = {}
    scores = _lite(args.cache_dir, wrapped, seen)
    args.out.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out / "texts.jsonl.gz", "wt", encoding="utf-8") as handle:
        for fmt, text in seen:
            handle.write(json.dumps({"format": fmt, "text": text}) + "\n")
    (args.out / "fp32.json").write_text(json.dumps({"model": args.model, "scores": scores}, indent=2) + "\n")
    print(f"{len(seen)} (format, text) pairs -> {args.out}")


def embed(args: argparse.Namespace) -> None:
    import torch

    from sciembed.train.stage1 import load_init_model  # loads a local folder on a bare machine too

    model = load_init_model(args.model).place(args.device, torch.bfloat16)
    rows = [json.loads(line) for line in gzip.open(args.texts, "rt", encoding="utf-8")]
    out: dict[str, np.ndarray] = {}
    for fmt in sorted({r["format"] for r in rows}):
        texts = [r["text"] for r in rows if r["format"] == fmt]
        if model.texts(texts) != texts:
            raise ValueError("a recorded text does not pass through model.texts unchanged")
        vectors = model.encode(texts, format=fmt, device=args.device)
        out[f"{fmt}/vectors"] = vectors.astype(np.float32)
        out[f"{fmt}/texts"] = np.asarray(texts)
        print(f"{fmt}: {len(texts)} texts, packed={model.use_packed()}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "vectors.npz", **out)


def score(args: argparse.Namespace) -> None:
    from sciembed.evaluate.cache import EmbeddingCache

    reference = json.loads((args.guard / "fp32.json").read_text())["scores"]
    wrapped = _eval_model(args.model)
    fingerprint = wrapped.fingerprint() + "-gpu-bf16"
    data = np.load(args.vectors, allow_pickle=False)
    with tempfile.TemporaryDirectory() as root:
        for key in data.files:
            if key.endswith("/vectors"):
                fmt = key[: -len("/vectors")]
                cache = EmbeddingCache(root, fingerprint, wrapped.adapter_key(fmt))
                cache.add([str(t) for t in data[f"{fmt}/texts"]], data[key])

        def only_cached(papers, format, fields=None):
            raise RuntimeError(f"{len(papers)} texts of format {format!r} have no GPU vector")

        wrapped.fingerprint = lambda: fingerprint
        wrapped.encode = only_cached
        scores = _lite(root, wrapped)
    rows = []
    for task, ref in reference.items():
        diff = scores[task]["score"] - ref["score"]
        rows.append(
            {
                "task": task,
                "metric": ref["metric"],
                "fp32": ref["score"],
                "gpu_bf16": scores[task]["score"],
                "diff": diff,
                "within_limit": abs(diff) <= LIMIT,
            }
        )
    lines = [f"| task | metric | CPU fp32 | GPU bf16 | diff | within {LIMIT} |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['metric']} | {r['fp32']:.2f} | {r['gpu_bf16']:.2f} | {r['diff']:+.2f} | "
            f"{'yes' if r['within_limit'] else 'NO'} |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "guard.md").write_text(table + "\n")
    (args.out / "guard.json").write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    one = sub.add_parser("collect")
    one.add_argument("--model", default="models/sciembed-minilm")
    one.add_argument("--out", type=Path, default=REPO / "out" / "carry" / "guard")
    one.add_argument("--cache-dir", default=str(REPO / ".cache" / "embeddings"), help="fp32 embedding cache")
    two = sub.add_parser("embed")
    two.add_argument("--model", default="models/sciembed-minilm")
    two.add_argument("--texts", type=Path, required=True)
    two.add_argument("--device", default="cuda")
    two.add_argument("--out", type=Path, required=True)
    three = sub.add_parser("score")
    three.add_argument("--model", default="models/sciembed-minilm")
    three.add_argument("--guard", type=Path, default=REPO / "out" / "carry" / "guard")
    three.add_argument("--vectors", type=Path, required=True)
    three.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality-gpu")
    args = parser.parse_args()
    {"collect": collect, "embed": embed, "score": score}[args.step](args)


if __name__ == "__main__":
    main()
