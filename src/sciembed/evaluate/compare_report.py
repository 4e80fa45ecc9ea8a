"""Reports of a multi-model run: paired-bootstrap differences vs a reference model (markdown) and the
task-correlation heatmap (which tasks rank the evaluated models alike, as Figure 2 of the SPECTER2 post)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .results import Comparison, Interval, SuiteResult, TaskCorrelation

MIN_MODELS_FOR_CORRELATION = 3
AVERAGE_LABELS = {
    "out_of_training": "avg out-of-training",
    "out_of_training/classification": "avg out-of-training classification",
    "out_of_training/regression": "avg out-of-training regression",
    "out_of_training/proximity": "avg out-of-training proximity",
    "out_of_training/adhoc_search": "avg out-of-training search",
    "in_training": "avg in-training",
    "overall": "avg overall",
}


def _cell(interval: Interval | None) -> str:
    if interval is None:
        return "-"
    low, high = interval.low, interval.high
    flag = " ▲" if interval.above_zero else (" ▼" if interval.below_zero else "")
    return f"{interval.diff:+.2f} [{low:+.2f}, {high:+.2f}]{flag}"


def comparison_markdown(comparisons: Comparison, tasks: list[Mapping[str, Any]]) -> str:
    """Differences vs the reference with their intervals: one row per task, then the averages."""
    models = list(comparisons.models)
    if not models:
        return ""
    pct = int(round(comparisons.confidence * 100))
    lines = [
        f"## Differences vs {comparisons.reference} (paired bootstrap, {comparisons.n_boot} resamples, "
        f"{pct}% interval)",
        "",
        "| task | train | " + " | ".join(models) + " |",
        "|" + "---|" * (2 + len(models)),
    ]
    for task in tasks:
        mark = "in" if task["in_training"] else "out"
        cells = []
        for m in models:
            entry = comparisons.models[m].tasks.get(task["name"])
            cells.append(_cell(entry.interval if entry is not None else None))
        lines.append(f"| {task['name']} | {mark} | " + " | ".join(cells) + " |")
    for group, label in AVERAGE_LABELS.items():
        cells = []
        for m in models:
            entry = comparisons.models[m].averages.get(group)
            cell = _cell(entry.interval if entry is not None else None)
            if entry is not None and entry.n and entry.n != entry.of:
                cell += f" ({entry.n}/{entry.of})"
            cells.append(cell)
        lines.append(f"| **{label}** | | " + " | ".join(cells) + " |")
    half = [
        f"{m}: ±{out.half_width:.2f}"
        for m in models
        if (out := comparisons.models[m].average("out_of_training")) is not None
    ]
    lines += [
        "",
        "Each cell: candidate minus reference, main metric x 100, [interval]; ▲ / ▼: the interval excludes 0. "
        "Interval half-width of the out-of-training average difference: " + (", ".join(half) or "-") + ".",
    ]
    return "\n".join(lines) + "\n"


def task_correlation(report: SuiteResult) -> TaskCorrelation | None:
    """Pearson correlation of the tasks' main scores across the evaluated models (tasks every such model
    scored); None with fewer than three models."""
    models = report.ok_models
    names = [t["name"] for t in report.tasks if all(m.scored(t["name"]) is not None for m in models)]
    if len(models) < MIN_MODELS_FOR_CORRELATION or len(names) < 2:
        return None
    scores = np.array([[m.tasks[n].main_score for m in models] for n in names], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.corrcoef(scores)
    return TaskCorrelation(
        tasks=names,
        models=[m.name for m in models],
        matrix=[[None if np.isnan(v) else float(v) for v in row] for row in matrix],
    )


def correlation_heatmap(correlation: TaskCorrelation, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = correlation.tasks
    matrix = np.array([[np.nan if v is None else v for v in row] for row in correlation.matrix], dtype=float)
    size = max(6.0, 0.42 * len(names) + 3)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)))
    ax.set_yticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    if len(names) <= 30:
        for i in range(len(names)):
            for j in range(len(names)):
                if not np.isnan(matrix[i, j]):
                    ax.text(j, i, f"{matrix[i, j]:.1f}", ha="center", va="center", fontsize=5)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Pearson r across models")
    ax.set_title(f"Task correlation over {len(correlation.models)} models")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
