"""The training curve: ``training.png`` (loss and validation metrics) and ``curve.md`` (a table)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

PNG = "training.png"
TABLE = "curve.md"


def _val_keys(records: Sequence[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for record in records:
        for key, value in record.items():
            if key in ("step", "kind", "val_s") or not isinstance(value, int | float) or key in keys:
                continue
            keys.append(key)
    return keys


def curve_table(records: Sequence[dict[str, Any]], max_rows: int = 40) -> str:
    """Markdown: training loss at logged steps (thinned to ``max_rows``) and every validation."""
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    lines = ["# Training curve", ""]
    if train:
        stride = max(1, -(-len(train) // max_rows))
        shown = train[::stride]
        if shown[-1] is not train[-1]:
            shown.append(train[-1])
        lines += [
            "## Training loss",
            "",
            "| step | epoch | loss | lr | grad norm | examples/s |",
            "|---|---|---|---|---|---|",
        ]
        for r in shown:
            grad = f"{r['grad_norm']:.3f}" if r.get("grad_norm") is not None else "-"
            speed = f"{r['examples_per_s']:.0f}" if r.get("examples_per_s") else "-"
            lines.append(
                f"| {r['step']} | {r.get('epoch', 0):.2f} | {r['loss']:.4f} | {r['lr']:.2e} | {grad} | {speed} |"
            )
        lines.append("")
    if val:
        keys = _val_keys(val)
        lines += ["## Validation", "", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for r in val:
            cells = [f"{r[k]:.4f}" if isinstance(r.get(k), int | float) else "-" for k in keys]
            lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
        lines.append("")
    if not train and not val:
        lines.append("(no metrics logged)")
    return "\n".join(lines) + "\n"


def plot_curve(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Training loss (left) and validation metrics (right) against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        left.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
    dev_loss = [(r["step"], r["dev_loss"]) for r in val if isinstance(r.get("dev_loss"), int | float)]
    if dev_loss:
        left.plot(*zip(*dev_loss, strict=True), marker="o", label="dev loss")
    left.set_xlabel("step")
    left.set_ylabel("triplet loss")
    left.set_title("loss")
    if left.lines:  # a run stopped (time budget) before its first logged step has none
        left.legend()
    left.grid(alpha=0.3)
    for key in _val_keys(val):
        if key.startswith("dev_"):
            continue
        points = [(r["step"], r[key]) for r in val if isinstance(r.get(key), int | float)]
        if not points:
            continue
        steps, values = zip(*points, strict=True)
        if max(abs(v) for v in values) > 1.5:  # lite metrics are x 100
            values = tuple(v / 100 for v in values)
            key = f"{key} / 100"
        right.plot(steps, values, marker="o", label=key)
    right.set_xlabel("step")
    right.set_title("validation")
    if right.lines:
        right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_curve(records: Sequence[dict[str, Any]], output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``training.png`` and ``curve.md`` into ``output_dir``."""
    output_dir = Path(output_dir)
    png = plot_curve(records, output_dir / PNG)
    table = output_dir / TABLE
    table.write_text(curve_table(records))
    return png, table
