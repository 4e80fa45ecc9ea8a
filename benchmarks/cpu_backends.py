"""End-to-end CPU speed of `sciembed embed` per backend: wall time and CPU time of the whole command.

    python benchmarks/cpu_backends.py [--docs 1000] [--rounds 3] [--methods torch,onnx,openvino]

Workload: the first ``--docs`` real arXiv abstracts of ``../shared/data/arxiv`` (title + abstract),
the shipped model ``models/sciembed-minilm``, proximity format. Each method is one ``sciembed embed``
subprocess (Python start, model load, export reuse, tokenisation, inference, Parquet writing: all
of it counts), the methods interleaved round by round in a rotating order, a fresh output file each
time. Per run: wall seconds, CPU seconds of the subprocess (user + sys, from ``getrusage``: less
sensitive to other processes on a shared machine than wall time) and the load average. Agreement:
per-document cosine of each method's vectors with the PyTorch fp32 run's.

Methods (``--methods``, comma separated):

* ``torch``: the default PyTorch fp32 path.
* ``onnx``: the automatic export's settings (dynamic int8 with the adapters and FFN output
  projections in fp32, onnxruntime's BERT optimizer), the proximity graph only.
* ``onnx_auto``: ``--backend onnx -m MODEL``: what a user runs: the automatic export itself (all
  four formats, made once and cached next to the model; a later run finds it by the record of the
  model folder's files, without loading the PyTorch model or importing torch).
* ``onnx_static``: static (calibrated, QDQ, per-channel) int8 from ``sciembed export onnx --int8 static``.
* ``onnx_fp32``: ``sciembed export onnx`` in fp32.
* ``openvino``: NNCF int8 (``sciembed export openvino``, the automatic export's settings), the
  proximity graph only (calibration takes minutes per graph here).
* ``openvino_fp32``: the fp32 ONNX export run by OpenVINO.

Exports are made before the first timed round (their time is recorded, not counted). The model's
fingerprint is read before and after the rounds and compared with each export's
``source_fingerprint``: the cosine columns are only valid when all of them agree (``"same_model"``
in the json; an earlier run compared a replaced model with old exports). Writes
``cpu_backends.json``, ``.md`` and ``.png`` (docs/s per method) into ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARXIV = REPO.parent / "shared" / "data" / "arxiv" / "papers-2025-2026.jsonl.gz"
MODEL = REPO / "models" / "sciembed-minilm"


def write_papers(path: Path, docs: int) -> int:
    count = 0
    with gzip.open(ARXIV, "rt", encoding="utf-8") as source, open(path, "w", encoding="utf-8") as out:
        for line in source:
            row = json.loads(line)
            title, abstract = (row.get("title") or "").strip(), (row.get("abstract") or "").strip()
            if title and abstract:
                clean = {"paper_id": str(row["id"]), "title": re.sub(r"\s+", " ", title)}
                out.write(json.dumps({**clean, "abstract": re.sub(r"\s+", " ", abstract)}) + "\n")
                count += 1
                if count >= docs:
                    break
    return count


def cli() -> list[str]:
    exe = Path(sys.executable).parent / "sciembed"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "sciembed"]


def prepare(method: str, work: Path) -> tuple[list[str], float]:
    """The `sciembed embed` arguments of ``method`` and the seconds its export took (0 when reused)."""
    started = time.perf_counter()
    if method == "torch":
        args = ["-m", str(MODEL)]
    elif method == "onnx_auto":
        from sciembed.model.export_cache import cached_export

        cached_export(MODEL, "onnx")
        args = ["-m", str(MODEL), "--backend", "onnx"]
    elif method == "onnx":
        from sciembed.model.export import export_onnx

        folder = work / "onnx-int8"
        if not (folder / "sciembed-onnx.json").is_file():
            export_onnx(str(MODEL), folder, formats=["proximity"], int8=True, optimize=True)
        args = ["-m", str(folder), "--backend", "onnx"]
    elif method == "openvino":
        # NNCF calibration takes minutes per graph on 2 shared cores: the proximity graph alone
        from sciembed.model.export_openvino import export_openvino

        folder = work / "openvino-int8"
        if not (folder / "sciembed-openvino.json").is_file():
            export_openvino(str(MODEL), folder, formats=["proximity"])
        args = ["-m", str(folder), "--backend", "openvino"]
    elif method in ("onnx_static", "onnx_fp32", "openvino_fp32"):
        from sciembed.model.export import export_onnx

        folder = work / ("onnx-static" if method == "onnx_static" else "onnx-fp32")
        if not (folder / "sciembed-onnx.json").is_file():
            int8 = "static" if method == "onnx_static" else False
            export_onnx(str(MODEL), folder, formats=["proximity"], int8=int8)
        args = ["-m", str(folder), "--backend", "openvino" if method == "openvino_fp32" else "onnx"]
    else:
        raise SystemExit(f"unknown method {method!r}")
    return args, time.perf_counter() - started


def model_fingerprint() -> str:
    from sciembed.model import load_model

    return load_model(str(MODEL)).fingerprint


def export_source(args: list[str]) -> str | None:
    """The ``source_fingerprint`` of the export a method's ``sciembed embed`` arguments run (None: PyTorch)."""
    if "--backend" not in args:
        return None
    folder = Path(args[args.index("-m") + 1])
    if folder == MODEL:
        from sciembed.model.export_cache import cached_export

        folder = cached_export(MODEL, args[args.index("--backend") + 1])
    for name in ("sciembed-onnx.json", "sciembed-openvino.json"):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text()).get("source_fingerprint")
    return None


def timed_embed(args: list[str], papers: Path, out: Path) -> dict[str, float]:
    out.unlink(missing_ok=True)  # a finished output would be resumed, not recomputed
    for stale in out.parent.glob(f".{out.name}*"):
        stale.unlink() if stale.is_file() else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run([*cli(), "embed", str(papers), str(out), "-f", "proximity", "-q", *args], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load, "load_after": os.getloadavg()[0]}


def vectors_of(path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return np.stack(pq.read_table(path).column("embedding").to_pylist())


def table(results: dict) -> str:
    docs, rows = results["docs"], results["methods"]
    base = rows["torch"]["median_wall_s"] if "torch" in rows else None
    base_cpu = rows["torch"]["median_cpu_s"] if "torch" in rows else None
    lines = [
        "| method | docs/s (median wall) | x torch (wall) | docs per CPU-s | x torch (CPU) | wall s per round "
        "| CPU s per round | load avg (1 min) | cos min vs torch | cos mean | export s (once) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in row["runs"])
        cpus = ", ".join(f"{r['cpu_s']:.1f}" for r in row["runs"])
        loads = ", ".join(f"{r['load_before']:.1f}" for r in row["runs"])
        x_wall = f"{base / row['median_wall_s']:.2f}" if base else ""
        x_cpu = f"{base_cpu / row['median_cpu_s']:.2f}" if base_cpu else ""
        lines.append(
            f"| {name} | {docs / row['median_wall_s']:.1f} | {x_wall} | {docs / row['median_cpu_s']:.1f} | {x_cpu} "
            f"| {walls} | {cpus} | {loads} | {row['cos_min']:.5f} | {row['cos_mean']:.5f} | {row['export_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["methods"])
    docs = results["docs"]
    wall = [docs / results["methods"][n]["median_wall_s"] for n in names]
    cpu = [docs / results["methods"][n]["median_cpu_s"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, wall, 0.4, label="docs/s (wall, median)")
    ax.bar(x + 0.2, cpu, 0.4, label="docs per CPU-second")
    ax.set_xticks(x, names)
    ax.set_ylabel("documents")
    ax.set_title(f"sciembed embed, {docs} arXiv abstracts, {os.cpu_count()} CPU cores (shared)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default="torch,onnx_auto,openvino")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "cpu_backends")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cpu_backends")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    papers = args.work / f"arxiv-{args.docs}.jsonl"
    docs = write_papers(papers, args.docs)
    fingerprint_before = model_fingerprint()
    prepared = {m: prepare(m, args.work) for m in methods}
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for round_index in range(args.rounds):
        order = methods[round_index % len(methods) :] + methods[: round_index % len(methods)]
        for method in order:
            result = timed_embed(prepared[method][0], papers, args.work / f"{method}.parquet")
            runs[method].append(result)
            print(
                f"round {round_index + 1} {method}: {docs / result['wall_s']:.1f} docs/s, "
                f"{docs / result['cpu_s']:.1f} docs/CPU-s, load {result['load_before']:.1f}",
                flush=True,
            )
    sources = {m: export_source(prepared[m][0]) for m in methods}
    same_model = fingerprint_before == model_fingerprint() and all(
        source in (None, fingerprint_before) for source in sources.values()
    )
    reference = vectors_of(args.work / f"{methods[0]}.parquet")
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "docs": docs,
        "reference": methods[0],
        "model_fingerprint": fingerprint_before,
        "same_model": same_model,
        "methods": {},
    }
    for method in methods:
        vectors = vectors_of(args.work / f"{method}.parquet")
        cos = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
        results["methods"][method] = {
            "args": prepared[method][0],
            "export_s": prepared[method][1],
            "runs": runs[method],
            "median_wall_s": statistics.median(r["wall_s"] for r in runs[method]),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in runs[method]),
            "export_source_fingerprint": sources[method],
            "cos_min": float(cos.min()),
            "cos_mean": float(cos.mean()),
        }
    (args.out / "cpu_backends.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = table(results)
    if not same_model:
        markdown += "\n**The cosines are invalid: the model and an export differ (or the model changed).**\n"
    (args.out / "cpu_backends.md").write_text(f"`{results['command']}`, {results['date']}\n\n" + markdown)
    plot(results, args.out / "cpu_backends.png")
    print(markdown)


if __name__ == "__main__":
    main()
