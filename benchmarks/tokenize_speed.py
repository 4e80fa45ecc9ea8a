"""Tokenisation speed on the host: the Rust tokenizer (old path) against the chunk-memo WordPiece.

    python3 benchmarks/tokenize_speed.py --out $OUT/tok            # the speed table (+ CUDA encode)
    python3 benchmarks/tokenize_speed.py --check-all --out out/tok   # ids of every shared JSONL record

Workload: real arXiv ``title [SEP] abstract`` texts (``out/carry/speed/arxiv-sample.jsonl.gz``), the
shipped MiniLM's tokenizer (``out/carry/speed/minilm-fp16``), truncation at the model's max_length.
Rows (docs/s, wall; CPU docs per CPU-second where one process does the work):

* ``old rust, N threads``: ``encode_batch_fast`` on a private Rust tokenizer plus the conversion to
  flat int64 ids (the engine's path before the chunk-memo WordPiece); N = rayon threads, one
  subprocess per N (rayon's pool size is fixed at its first use).
* ``new, in process``: :class:`sciembed.model.wordpiece.AsciiWordPiece` on the calling thread, cold
  (empty chunk memory) and warm (second pass; a long job is warm after its first groups).
* ``new, N processes``: :class:`sciembed.engine.processes.TokenizerPool` (``tokenize_workers=N``)
  over groups of 1024 texts; pool start-up reported apart; cold and warm passes.
* ``producer``: the engine's host side alone (texts, tokenise, sort, pack, pin), old and new.
* on CUDA: ``model.encode(papers)`` end to end (default fp16 packed path), old tokeniser, new, and
  new with ``tokenize_workers``; vectors of old and new compared bit for bit.

``--check-all``: every record of every JSONL source of ``--data`` (default ../shared/data): the
embedding text (title [SEP] abstract) of records with a title, and all string values of every record
joined; ids of the new path against the Hugging Face tokenizer (``tokenizer(texts, truncation=True)``)
at the model's max_length and at 512. Prints the count checked and the mismatches; non-zero exit on any.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
WORKERS = [1, 2, 4, 8, 16]


def load(args):
    import embed_speed

    embed_speed._MINILM_OVERRIDE = args.minilm if args.minilm.is_dir() else None
    model = embed_speed.minilm_model()
    papers = embed_speed.read_arxiv(args.arxiv, args.docs)
    return model, papers


def old_flat(model, texts: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The engine's tokenisation before the chunk-memo WordPiece: Rust ids, then flat int64."""
    seqs = model._rust_or_wrapper_ids(texts, limit)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    return np.fromiter(chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum())), lengths


def fresh_fast(model, limit: int):
    from sciembed.model.wordpiece import fast_wordpiece

    backend = model._backend_tokenizer(limit)
    return fast_wordpiece(backend.to_str(), limit, lambda t: [e.ids for e in backend.encode_batch_fast(t)])


def clock(fn, repeats: int) -> tuple[float, float]:
    """Best wall seconds and the CPU seconds (all threads) of that run."""
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = min(best, (wall, cpu))
    return best


def rust_child(args) -> None:
    """One subprocess of the old path (RAYON_NUM_THREADS set by the parent): JSON on stdout."""
    model, papers = load(args)
    texts, limit = model.texts(papers), int(model.config.max_length)
    old_flat(model, texts[:512], limit)  # the private copy and rayon's pool
    wall, cpu = clock(lambda: old_flat(model, texts, limit), args.repeats)
    print(json.dumps({"wall": wall, "cpu": cpu, "docs": len(texts)}))


def row(label: str, docs: int, wall: float, cpu: float | None = None, **extra) -> dict:
    result = {"path": label, "docs": docs, "wall_s": wall, "docs_per_s": docs / wall, **extra}
    if cpu:
        result["docs_per_cpu_s"] = docs / cpu
    cells = f"{docs / wall:,.0f}" + (f" | {docs / cpu:,.0f}" if cpu else " | -")
    print(f"| {label} | {cells} |", flush=True)
    return result


def speed(args) -> list[dict]:
    import torch

    from sciembed.engine.processes import TokenizerPool

    model, papers = load(args)
    limit = int(model.config.max_length)
    cores = len(os.sched_getaffinity(0))
    print(f"{len(papers)} docs, max_length {limit}, {cores} usable cores, {platform.processor() or platform.machine()}")
    rows: list[dict] = []
    started = time.perf_counter()
    texts = model.texts(papers)
    rows.append(row_texts := {"path": "texts", "docs_per_s": len(texts) / (time.perf_counter() - started)})
    print(f"texts (title [SEP] abstract): {row_texts['docs_per_s']:,.0f} docs/s")

    fast = fresh_fast(model, limit)
    new, lengths = fast.encode_flat(texts)
    reference = model.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
    ends = np.cumsum(lengths).tolist()
    got = new.tolist()
    bad = sum(got[e - n : e] != r for e, n, r in zip(ends, lengths.tolist(), reference, strict=True))
    print(f"ids of the new path against the HF tokenizer: {len(texts)} texts, {bad} mismatches")
    print(f"{lengths.mean():.0f} tokens/doc; {sum(t.isascii() for t in texts) / len(texts):.2%} of texts ASCII\n")

    print("| path | docs/s (wall) | docs per CPU-s |\n|---|---|---|")
    for n in args.workers:
        env = {**os.environ, "RAYON_NUM_THREADS": str(n), "RAYON_RS_NUM_CPUS": str(n)}
        command = [sys.executable, __file__, "--rust-child", *forward(args)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        child = json.loads(out.strip().splitlines()[-1])
        rows.append(row(f"old rust, {n} threads", child["docs"], child["wall"], child["cpu"], workers=n))

    for label in ("cold", "warm"):
        instance = fresh_fast(model, limit) if label == "cold" else fast
        wall, cpu = clock(lambda i=instance: i.encode_flat(texts), 1 if label == "cold" else args.repeats)
        rows.append(row(f"new, in process, {label}", len(texts), wall, cpu, workers=1))

    spec = model.tokenizer_spec(limit)
    batches = [texts[i : i + 1024] for i in range(0, len(texts), 1024)]
    for n in args.workers:
        start = time.perf_counter()
        pool = TokenizerPool(spec, limit, n)
        list(pool.encode_groups((k, ["warm up"]) for k in range(n)))  # every process started
        up = time.perf_counter() - start
        for label in ("cold", "warm"):
            wall, _ = clock(lambda p=pool: list(p.encode_groups(enumerate(batches))), 1)
            rows.append(row(f"new, {n} processes, {label} (start-up {up:.1f} s)", len(texts), wall, workers=n))
        pool.close()

    rows += producer_rows(model, papers, args)
    if torch.cuda.is_available():
        rows += encode_rows(model, papers, args)
    return rows


def without_fast_path(model):
    """The model with the chunk-memo WordPiece switched off (the old engine path), as a context."""
    from contextlib import contextmanager

    @contextmanager
    def switched():
        model._fast_wordpiece = lambda limit: None  # the instance attribute hides the method
        try:
            yield model
        finally:
            del model._fast_wordpiece

    return switched()


def close_pools(model) -> None:
    for pool in model.__dict__.pop("_tokenizer_pools", {}).values():
        pool.close()  # the next size starts its own processes


def producer_rows(model, papers, args) -> list[dict]:
    import profile_embed

    rows = []
    pin = __import__("torch").cuda.is_available()
    for label, workers in (("old", 0), ("new", 0), *(("new", n) for n in args.workers if n > 1)):
        runs = []
        for _ in range(2):
            if label == "old":
                with without_fast_path(model):
                    runs.append(profile_embed.producer_seconds(model, papers, True, 65536, pin=pin, workers=workers)[0])
            else:
                runs.append(profile_embed.producer_seconds(model, papers, True, 65536, pin=pin, workers=workers)[0])
        name = f"producer packed 64k, {label}" + (f", {workers} processes" if workers else "")
        rows.append(row(name, len(papers), min(runs), workers=workers))
        close_pools(model)
    return rows


def encode_rows(model, papers, args) -> list[dict]:
    import torch

    from sciembed.engine import EncodeOptions

    model.place("cuda", torch.float16)
    model.encode(papers[:2048], "proximity")  # warm-up: kernels, the fast path's memory
    rows, vectors = [], {}

    def timed(options, repeats=args.repeats):
        best = float("inf")
        for _ in range(repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.encode(papers, "proximity", options=options)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        return best, out

    with without_fast_path(model):
        seconds, vectors["old"] = timed(EncodeOptions())
    rows.append(row("encode CUDA fp16, old tokeniser", len(papers), seconds))
    seconds, vectors["new"] = timed(EncodeOptions())
    rows.append(row("encode CUDA fp16, new (default)", len(papers), seconds))
    for n in [w for w in args.workers if w > 1] + [max(1, len(os.sched_getaffinity(0)) - 1)]:
        options = EncodeOptions(tokenize_workers=n)
        model.encode(papers[:2048], "proximity", options=options)  # the pool started
        seconds, out = timed(options)
        rows.append(row(f"encode CUDA fp16, new, tokenize_workers={n}", len(papers), seconds, workers=n))
        vectors[f"w{n}"] = out
        close_pools(model)
    same = {k: bool(np.array_equal(v, vectors["old"])) for k, v in vectors.items()}
    print(f"vectors bit-identical to the old path: {same}")
    rows.append({"path": "bit-identical to old", **same})
    return rows


# ---- --check-all ---------------------------------------------------------------------------------
def record_texts(model, path: Path) -> list[str]:
    from sciembed.data.records import string_values

    texts = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("title"), str) and record["title"].strip():
                texts.append(model.texts([{**record, "paper_id": "x"}])[0])
            texts.append(" ".join(string_values(record))[:50000])
    return texts


def check_all(args) -> int:
    from rich.progress import track

    model, _ = load(args)
    sources = sorted(args.data.rglob("*.jsonl")) + sorted(args.data.rglob("*.jsonl.gz"))
    limits = sorted({int(model.config.max_length), 512})
    checked = mismatched = 0
    for path in sources:
        texts = record_texts(model, path)
        bad = 0
        for limit in limits:
            for start in track(range(0, len(texts), 2000), description=f"{path.name} @{limit}"):
                part = texts[start : start + 2000]
                expected = model.tokenizer(part, truncation=True, max_length=limit)["input_ids"]
                got = model.tokenize(part, max_length=limit)
                bad += sum(a != b for a, b in zip(got, expected, strict=True))
        checked += len(texts) * len(limits)
        mismatched += bad
        print(f"{path.relative_to(args.data)}: {len(texts)} texts x {len(limits)} lengths, {bad} mismatches")
    print(f"checked {checked} tokenisations ({len(sources)} sources, max_length {limits}): {mismatched} mismatches")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        summary = {"checked": checked, "mismatches": mismatched, "sources": [str(p) for p in sources]}
        (args.out / "tokenize_check.json").write_text(json.dumps(summary, indent=1))
    return 1 if mismatched else 0


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series = {
        "old: Rust, N rayon threads": [r for r in rows if r["path"].startswith("old rust")],
        "new: chunk-memo WordPiece, N processes (warm)": [
            r for r in rows if r["path"].startswith("new, ") and "processes, warm" in r["path"]
        ],
    }
    for (label, sub), style in zip(series.items(), ("o-", "s-"), strict=True):
        ax.plot([r["workers"] for r in sub], [r["docs_per_s"] for r in sub], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("threads (old) / processes (new)")
    ax.set_ylabel("documents / s (tokenisation)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def forward(args) -> list[str]:
    return ["--arxiv", str(args.arxiv), "--minilm", str(args.minilm), "--docs", str(args.docs),
            "--repeats", str(args.repeats)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arxiv", type=Path, default=REPO / "out/carry/speed/arxiv-sample.jsonl.gz")
    parser.add_argument("--minilm", type=Path, default=REPO / "out/carry/speed/minilm-fp16")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=WORKERS)
    parser.add_argument("--out", type=Path, default=None, help="folder for tokenize_speed.json/.md/.png")
    parser.add_argument("--check-all", action="store_true", help="ids of every shared JSONL record")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rust-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rust_child:
        rust_child(args)
        return 0
    if args.check_all:
        return check_all(args)
    rows = speed(args)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tokenize_speed.json").write_text(json.dumps(rows, indent=1))
        table = ["| path | docs/s | docs per CPU-s |", "|---|---|---|"] + [
            f"| {r['path']} | {r['docs_per_s']:,.0f} | {r.get('docs_per_cpu_s', 0):,.0f} |"
            for r in rows
            if "docs_per_s" in r
        ]
        (args.out / "tokenize_speed.md").write_text("\n".join(table) + "\n")
        chart(rows, args.out / "tokenize_speed.png")
        print(f"wrote {args.out}/tokenize_speed.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
