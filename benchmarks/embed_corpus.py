"""Embed a folder of Parquet paper shards with a release's adapters into fp16 .npy parts (for index benchmarks).

    python3 benchmarks/embed_corpus.py --papers /tmp/papers --base out/carry/speed/minilm-fp16 \
        --release models/sciembed-minilm --format proximity --out /tmp/emb [--part-mib 16]

``--base`` is a model folder of the release's base (the GPU machine has no registry package, so the
base travels as a folder); the release's adapters are loaded onto it with
``sciembed.model.folder.load_adapter``. Writes ``ids.txt.gz`` (one paper id per line, row order),
``emb-000.npy`` ... (float16, rows in the same order, each at most ``--part-mib``) and ``README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--papers", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--release", type=Path, required=True)
    parser.add_argument("--format", default="proximity")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--part-mib", type=float, default=16)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()

    import torch

    from sciembed.model.folder import load_adapter, load_model

    model = load_model(args.base)
    load_adapter(model, args.format, args.release / "adapters" / args.format)
    model.place(args.device, torch.float16 if args.device.startswith("cuda") else torch.float32)
    shards = sorted(args.papers.glob("*.parquet"))
    rows = [r for s in shards for r in pq.read_table(s, columns=["paper_id", "title", "abstract"]).to_pylist()]
    start = time.perf_counter()
    vectors = model.encode(rows, args.format, device=args.device)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out / "ids.txt.gz", "wt") as handle:
        handle.writelines(f"{r['paper_id']}\n" for r in rows)
    half = vectors.astype(np.float16)
    per_part = max(1, int(args.part_mib * 2**20 // (half.shape[1] * 2)) - 64)  # header room
    parts = [half[i : i + per_part] for i in range(0, len(half), per_part)]
    for i, part in enumerate(parts):
        np.save(args.out / f"emb-{i:03d}.npy", part)
    meta = {
        "papers": len(rows),
        "dimension": int(half.shape[1]),
        "format": args.format,
        "release": str(args.release),
        "base": str(args.base),
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device,
        "encode_seconds": round(seconds, 2),
        "parts": len(parts),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (args.out / "README.md").write_text(
        "Real paper embeddings for index benchmarks (benchmarks/embed_corpus.py).\n\n"
        "ids.txt.gz: paper ids in row order; emb-NNN.npy: float16 rows (L2-normalised by the model), "
        "concatenate in name order.\n\n```json\n" + json.dumps(meta, indent=2) + "\n```\n"
    )
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
