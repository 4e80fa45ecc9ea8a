"""Noise of the validation suite: paired-bootstrap interval widths of the differences between two real
models (default all-MiniLM-L6-v2 vs the shipped sciembed-minilm), with the run's wall time.

CPU (here, with ../shared/data; the suite is built on first use):

    python benchmarks/suite_noise.py --tasks lite --device cpu --out benchmarks/results/suite-noise

GPU machine (no ../shared: carry a built suite folder, e.g. .cache/sciembed-lite, 42 MB):

    python3 benchmarks/suite_noise.py --tasks .cache/sciembed-lite/tasks.jsonl --device cuda --out $OUT/noise

Two suite versions side by side, from results files already written (no embedding):

    python benchmarks/suite_noise.py --compare v5=A.json.gz --compare v6=B.json.gz --out DIR

writes ``compare.md`` / ``compare.png``: every task's and average's half-width and item count per
results file (the first candidate against the reference of each).

``--task NAME`` (repeatable) restricts the run. Writes ``results.json`` / ``results.md`` of
``sciembed evaluate`` and ``noise.json`` / ``noise.md``: per average (out-of-training, its formats,
in-training, overall) the difference and the half-width of its 95% interval, the task count, and
the wall / CPU time per model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAIN_AVERAGES = ("out_of_training", "in_training", "overall")
GROUPS = (
    "out_of_training",
    "out_of_training/classification",
    "out_of_training/regression",
    "out_of_training/proximity",
    "out_of_training/adhoc_search",
    "in_training",
    "overall",
)


def summarise(report: dict, wall_s: float, cpu_s: float, command: str) -> dict:
    comparisons = report.get("comparisons") or {}
    out = {
        "created": report["created"],
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, {platform.platform()}",
        "device": report["device"],
        "wall_s": round(wall_s, 1),
        "cpu_s": round(cpu_s, 1),
        "models": {
            m["name"]: {
                "total_s": round(m.get("timing", {}).get("total_s", float("nan")), 1),
                "embedded": m.get("embeddings", {}),
                "averages": {g: m["averages"].get(g, {}).get("score") for g in MAIN_AVERAGES},
            }
            for m in report["models"]
        },
        "reference": comparisons.get("reference"),
        "n_boot": comparisons.get("n_boot"),
        "bootstrap_s": round(comparisons.get("compute_s", 0.0), 1),
        "differences": {},
    }
    for name, entry in comparisons.get("models", {}).items():
        out["differences"][name] = {g: entry["averages"].get(g) for g in GROUPS}
        out["differences"][name]["tasks"] = entry["tasks"]
    return out


def markdown(summary: dict) -> str:
    lines = [
        f"Measured {summary['created']} on {summary['machine']}, device {summary['device']}: `{summary['command']}`.",
        f"Wall time {summary['wall_s'] / 60:.1f} min, CPU time {summary['cpu_s'] / 60:.1f} min "
        f"(bootstrap {summary['bootstrap_s']:.0f} s, {summary['n_boot']} resamples).",
        "",
        "| model | run time | out-of-training avg | in-training avg | overall avg |",
        "|---|---|---|---|---|",
    ]
    for name, m in summary["models"].items():
        avg = m["averages"]
        cells = ["-" if avg[g] is None else f"{avg[g]:.2f}" for g in MAIN_AVERAGES]
        lines.append(f"| {name} | {m['total_s'] / 60:.1f} min | " + " | ".join(cells) + " |")
    for name, diff in summary["differences"].items():
        lines += [
            "",
            f"{name} - {summary['reference']} (95% paired-bootstrap interval, half-width = the noise):",
            "",
            "| average | tasks | difference | interval | half-width |",
            "|---|---|---|---|---|",
        ]
        for group in GROUPS:
            entry = diff.get(group)
            if not entry or entry.get("diff") is None:
                continue
            lines.append(
                f"| {group.replace('_', ' ').replace('adhoc search', 'search')} | {entry['n']}/{entry['of']} | "
                f"{entry['diff']:+.2f} | [{entry['low']:+.2f}, {entry['high']:+.2f}] | ±{entry['half_width']:.2f} |"
            )
        lines += ["", "| task | difference | interval | half-width | items |", "|---|---|---|---|---|"]
        for task, entry in diff["tasks"].items():
            lines.append(
                f"| {task} | {entry['diff']:+.2f} | [{entry['low']:+.2f}, {entry['high']:+.2f}] | "
                f"±{entry['half_width']:.2f} | {entry['n']} |"
            )
    return "\n".join(lines) + "\n"


def _read_report(path: str) -> dict:
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as handle:
        return json.load(handle)


def compare(labelled: list[tuple[str, str]], out: Path) -> str:
    """Half-widths of the first candidate's differences in each results file, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = []
    for label, path in labelled:
        comparisons = _read_report(path)["comparisons"]
        name, entry = next(iter(comparisons["models"].items()))
        columns.append((label, path, comparisons["reference"], name, entry))
    lines = [
        "Half-width of the 95% paired-bootstrap interval (the noise) of each difference, and the items it resamples:",
        "",
    ]
    lines += [f"- {label}: `{path}`: {name} - {ref}" for label, path, ref, name, _ in columns]
    header = " | ".join(f"{label} diff | {label} half-width | {label} items" for label, *_ in columns)
    lines += ["", f"| row | {header} |", "|---" * (1 + 3 * len(columns)) + "|"]
    tasks = list(columns[-1][4]["tasks"])
    for group in GROUPS:
        cells = []
        for *_, entry in columns:
            e = entry["averages"].get(group)
            cells += ["-"] * 3 if not e else [f"{e['diff']:+.2f}", f"±{e['half_width']:.2f}", f"{e['n']} tasks"]
        lines.append(f"| **{group.replace('_', ' ')}** | " + " | ".join(cells) + " |")
    for task in tasks:
        cells = []
        for *_, entry in columns:
            e = entry["tasks"].get(task)
            cells += ["-"] * 3 if not e else [f"{e['diff']:+.2f}", f"±{e['half_width']:.2f}", str(e["n"])]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(text)
    rows = [*GROUPS[:5], *tasks]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.5))
    height = 0.8 / len(columns)
    for k, (label, *_, entry) in enumerate(columns):
        values = [
            (entry["averages"].get(r) or entry["tasks"].get(r) or {}).get("half_width", float("nan")) for r in rows
        ]
        ax.barh([i + k * height for i in range(len(rows))], values, height=height, label=label)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [r.replace("_", " ") for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("half-width of the 95% interval (score points)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=120)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, help="default: minilm, models/sciembed-minilm")
    parser.add_argument("--tasks", default="lite")
    parser.add_argument("--task", action="append", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cache-dir", default=str(REPO / ".cache" / "embeddings"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--compare", action="append", default=None, metavar="LABEL=RESULTS")
    args = parser.parse_args(argv)
    if args.compare:
        labelled = [tuple(item.split("=", 1)) for item in args.compare]
        if any(len(pair) != 2 for pair in labelled):
            parser.error("--compare takes LABEL=RESULTS_FILE")
        print(compare(labelled, Path(args.out)))
        return 0
    sys.path.insert(0, str(REPO / "src"))
    from sciembed.evaluate.command import run_evaluate

    models = args.model or ["minilm", str(REPO / "models" / "sciembed-minilm")]
    command = " ".join(["python benchmarks/suite_noise.py", *(argv if argv is not None else sys.argv[1:])])
    start, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    report = run_evaluate(
        models,
        args.tasks,
        args.out,
        device=args.device,
        task_names=args.task,
        cache_dir=args.cache_dir,
        batch_size=args.batch_size,
        data_root=args.data_root,
        n_boot=args.bootstrap,
    )
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    summary = summarise(report.to_json(), time.perf_counter() - start, cpu_s, command)
    out = Path(args.out)
    (out / "noise.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "noise.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
