"""Plot and tabulate ``benchmarks/engine_ab.py`` results (JSON lines, one file per run).

    python benchmarks/plot_engine_ab.py LABEL=FILE.jsonl ... --out benchmarks/results/engine_ab-h200/summary

Each row of a file is one (tree, model, workers) setting with its timed runs; the label names the
file's run (e.g. the commit). Writes SUMMARY.md (a table of every run's docs/s) and SUMMARY.png (the
median per setting, the runs as dots).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def read_rows(specs: list[str]) -> list[dict]:
    rows = []
    for spec in specs:
        label, _, path = spec.partition("=")
        for line in Path(path).read_text().splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                tree = "before the engine" if "old" in row["tree"] else f"engine {label}"
                workers = row.get("workers", "default")
                setting = f"{tree}, " + ("default" if workers == "default" else f"tokenize_workers={workers}")
                rows.append({"model": row["model"], "setting": setting, "rates": row["docs_per_s"], "run": label})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="LABEL=FILE.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    args = parser.parse_args()
    rows = read_rows(args.runs)
    lines = ["| model | setting | run | docs/s per timed run | median |", "|---|---|---|---|---|"]
    for r in rows:
        rates = " / ".join(f"{x:,.0f}" for x in r["rates"])
        lines.append(f"| {r['model']} | {r['setting']} | {r['run']} | {rates} | {statistics.median(r['rates']):,.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        mine = [r for r in rows if r["model"] == model]
        labels = [f"{r['setting']} ({r['run']})" if "before" not in r["setting"] else r["setting"] for r in mine]
        for y, r in enumerate(mine):
            ax.barh(y, statistics.median(r["rates"]), color="#4c72b0" if "before" not in r["setting"] else "#999999")
            ax.plot(r["rates"], [y] * len(r["rates"]), "k.", markersize=5)
        ax.set_yticks(range(len(mine)), labels, fontsize=7)
        ax.set_xlabel("documents / s (bar: median; dots: timed runs)")
        ax.set_title(f"{model}: default GPU encode, 20,000 arXiv abstracts")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    print(f"wrote {args.out.with_suffix('.md')} and .png")


if __name__ == "__main__":
    main()
