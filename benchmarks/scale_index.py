"""Index at scale: build the serving index (IVF-PQ) from `sciembed embed --ray` output, shard by shard.

    python benchmarks/scale_index.py --papers .bench/papers --out out/scale-index [--dimension 64]

Embeds the papers first (Ray path, CPU workers) with a small random encoder of the given width (the
index build does not care what made the vectors, and a real model would take hours on 2 cores), then
times `sciembed.scale.index.build_index` and records its peak resident memory (getrusage), the
memory after each data file, the index's size on disk, and what the same layout needs at 100M papers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
# Ray binds a local cluster to the machine's routable address unless told that this is a one-machine
# setup; tests and benchmarks here must talk over loopback only. (Read when ray is imported.)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)


def random_model_folder(folder: Path, dimension: int) -> Path:
    """A 1-layer BERT of width ``dimension`` with random weights and the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from sciembed.model import SciEmbedConfig, SciEmbedModel, save_model
    from sciembed.model.default_model import minilm_path

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=dimension,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=dimension * 2,
        vocab_size=30522,
        max_position_embeddings=514,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path(verify=False)))
    model = SciEmbedModel(BertModel(config, add_pooling_layer=False), tokenizer, SciEmbedConfig(name="random"))
    save_model(model.eval(), folder)
    return folder


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", required=True, help="Parquet shards from `scale_embed.py prep`")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dimension", type=int, default=64)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--nlist", type=int, default=256)
    parser.add_argument("--work", default=None, help="folder for the embeddings and the index (default: a temp dir)")
    args = parser.parse_args()

    import ray

    from sciembed.scale import ScaleOptions, embed_shards
    from sciembed.scale.index import build_index

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="scale-index-"))
    model = random_model_folder(work / "model", args.dimension)
    shards = sorted(str(p) for p in Path(args.papers).glob("*.parquet"))
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    embedded = embed_shards(shards, work / "embeddings", model=str(model), options=ScaleOptions(device="cpu"))
    embed_s = time.perf_counter() - started
    ray.shutdown()

    params = {"nlist": args.nlist}
    report = build_index(work / "embeddings", work / "index", kind="ivfpq", params=params, sample_size=args.sample)
    index_manifest = json.loads((work / "index" / "index.json").read_text())
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"CPU, {os.cpu_count()} cores",
        "command": " ".join(sys.argv),
        "papers": embedded.rows,
        "dimension": args.dimension,
        "embed_s": embed_s,
        "embeddings_mib": folder_mib(work / "embeddings" / "data"),
        "index_params": index_manifest["params"],
        "index_s": report.seconds,
        "index_vectors_per_s": report.added / report.seconds,
        "sample": report.sample,
        "largest_batch": report.largest_batch,
        "peak_rss_mib": report.peak_rss_mib,
        "rss_after_first_file_mib": report.rss_after_file_mib[0],
        "rss_after_last_file_mib": report.rss_after_file_mib[-1],
        "index_folder_mib": folder_mib(work / "index"),
        "faiss_file_mib": sum((work / "index" / f).stat().st_size for f in index_manifest["files"].values()) / 2**20,
    }
    (out / "scale_index.json").write_text(json.dumps(result, indent=2))
    lines = ["| quantity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in result.items()]
    (out / "scale_index.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
