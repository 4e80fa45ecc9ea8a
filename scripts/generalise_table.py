"""All candidates on every task of the validation suite, one table per starting model (issue 10, item 6).

    python scripts/generalise_table.py            # benchmarks/results/generalise/all-candidates.{md,png}
    python scripts/generalise_table.py --docs docs/TRAINING.md   # and the section between its markers
    python scripts/generalise_table.py --manifest M.json --out DIR/name

Reads every ``sciembed evaluate`` results file (``.json`` or ``.json.gz``) that the manifest
(``benchmarks/results/generalise/candidates.json``) lists, with its round, start and which model in it
is which candidate, and writes ``<out>.md`` (per start: the scores of the start and every candidate on
every task and average, then each candidate's paired-bootstrap difference vs the start on the averages
and the release rule's verdict) and ``<out>.png`` (out-of-training difference with its interval per
candidate). The differences are the ones ``sciembed evaluate`` stored in the file (each file against
its own run of the start); a file without them is compared here with the same bootstrap
(``sciembed.evaluate.bootstrap.compare_models``). The verdict is ``sciembed train release --check``'s
rule on those differences. It lives in scripts/ with the GPU runs' commands because it is their
report step (no measurement of its own, unlike benchmarks/).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciembed.data.atomic import atomic_write_bytes
from sciembed.evaluate.benchmark import read_results
from sciembed.evaluate.bootstrap import compare_models, group_members
from sciembed.evaluate.results import Comparison, Interval, ModelComparison, SuiteResult
from sciembed.train.multitask.release import ReleaseCheck, release_check

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks" / "results" / "generalise"
FORMAT_LABELS = {
    "classification": "classification",
    "regression": "regression",
    "proximity": "proximity",
    "adhoc_search": "search",
}
# averages of the score table and the difference block, in this order
SCORE_GROUPS = (
    *(f"out_of_training/{f}" for f in FORMAT_LABELS),
    "in_training",
    "out_of_training",
    "overall",
)
DOCS_BEGIN = "<!-- all-candidates: written by scripts/generalise_table.py --docs, do not edit by hand -->"
DOCS_END = "<!-- /all-candidates -->"
DIFF_GROUPS = ("out_of_training", *(f"out_of_training/{f}" for f in FORMAT_LABELS), "in_training", "overall")


def group_label(group: str) -> str:
    if group.startswith("out_of_training/"):
        return f"avg out-of-training {FORMAT_LABELS[group.split('/', 1)[1]]}"
    return {"in_training": "avg in-training", "out_of_training": "avg out-of-training", "overall": "avg overall"}[group]


# ---- inputs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One model of one results file, as the manifest names it."""

    model: str
    label: str
    recipe: str = ""
    shipped: str | None = None  # e.g. "v4": released as that version
    shipped_note: str | None = None  # e.g. "sciembed-minilm v4: the default"


@dataclass(frozen=True)
class Run:
    """One results file: its round, the start it holds and its candidates."""

    file: Path
    round: int
    start: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Manifest:
    path: Path
    suite: str
    starts: dict[str, str]  # model (as in the results files) -> readable name
    runs: tuple[Run, ...]


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ValueError(f"{where}: missing key {key!r}")
    return data[key]


def load_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the manifest ({exc})") from None
    starts = {
        _require(s, "model", f"{path}: starts"): _require(s, "name", f"{path}: starts")
        for s in _require(data, "starts", str(path))
    }
    runs = []
    for i, run in enumerate(_require(data, "runs", str(path))):
        where = f"{path}: runs[{i}]"
        start = _require(run, "start", where)
        if start not in starts:
            raise ValueError(f"{where}: start {start!r} is not one of the manifest's starts {sorted(starts)}")
        candidates = tuple(
            Candidate(
                model=_require(c, "model", where),
                label=_require(c, "label", where),
                recipe=c.get("recipe", ""),
                shipped=c.get("shipped"),
                shipped_note=c.get("shipped_note"),
            )
            for c in _require(run, "candidates", where)
        )
        runs.append(
            Run(path.parent / _require(run, "file", where), int(_require(run, "round", where)), start, candidates)
        )
    return Manifest(path, str(data.get("suite", "")), starts, tuple(runs))


def read_suite(path: Path) -> SuiteResult:
    """A ``results.json`` written by ``sciembed evaluate``, plain or gzip-compressed."""
    try:
        return read_results(path)
    except (OSError, EOFError, json.JSONDecodeError, KeyError) as exc:
        raise ValueError(
            f"{path}: not a readable sciembed evaluate results file ({type(exc).__name__}: {exc})"
        ) from None


# ---- one column per candidate ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    run: Run
    candidate: Candidate
    scores: dict[str, float]  # task -> main score
    differences: ModelComparison  # vs this file's own start
    rule: ReleaseCheck

    @property
    def header(self) -> str:
        verdict = "passes" if self.rule.passed else "refused"
        if self.candidate.shipped:
            return f"**R{self.run.round} {self.candidate.label} ({verdict}, shipped {self.candidate.shipped})**"
        return f"R{self.run.round} {self.candidate.label} ({verdict})"

    @property
    def short(self) -> str:
        return f"R{self.run.round} {self.candidate.label}"


@dataclass(frozen=True)
class StartTable:
    name: str
    model: str
    tasks: list[dict[str, Any]]
    scores: dict[str, float]  # the first file's start
    spread: dict[str, float]  # task -> max |score - first file's| over the other files' starts
    items_differ: list[str]  # tasks whose per-item data differ between the files' starts
    columns: list[Column]

    @property
    def resamples(self) -> str:
        return " / ".join(str(n) for n in sorted({c.rule.n_boot for c in self.columns}))

    @property
    def confidence(self) -> float:
        return self.columns[0].rule.confidence


def _scores(suite: SuiteResult, model: str) -> dict[str, float]:
    entry = suite.model(model)
    return {t["name"]: r.main_score for t in suite.tasks if entry and (r := entry.scored(t["name"])) is not None}


def _items(suite: SuiteResult, model: str) -> dict[str, Any]:
    entry = suite.model(model)
    return {
        t["name"]: r.items.to_json()
        for t in suite.tasks
        if entry and (r := entry.scored(t["name"])) is not None and r.items is not None
    }


def _task_key(tasks: Sequence[Mapping[str, Any]]) -> list[tuple]:
    return [(t["name"], t["type"], t["kind"], bool(t["in_training"]), t["main_metric"]) for t in tasks]


def _comparison(suite: SuiteResult, run: Run) -> Comparison:
    """The differences vs the run's start that ``sciembed evaluate`` stored, when they cover every
    candidate; else the same paired bootstrap computed here."""
    reference = suite.model(run.start).name
    wanted = [suite.model(c.model).name for c in run.candidates]
    stored = suite.comparisons
    if stored is not None and stored.reference == reference and all(w in stored.models for w in wanted):
        return stored
    return compare_models(suite, reference, wanted)


def _columns(run: Run, suite: SuiteResult) -> list[Column]:
    if suite.model(run.start) is None:
        raise ValueError(f"{run.file}: no model {run.start!r} (the run's start)")
    for cand in run.candidates:
        if suite.model(cand.model) is None:
            raise ValueError(f"{run.file}: no model {cand.model!r} (manifest candidate {cand.label!r})")
    named = {run.start} | {c.model for c in run.candidates}
    unnamed = sorted(m.name for m in suite.models if m.name not in named and m.spec not in named)
    if unnamed:
        raise ValueError(f"{run.file}: models {unnamed} are not in the manifest (label every candidate)")
    comparison = _comparison(suite, run)
    columns = []
    for cand in run.candidates:
        name = suite.model(cand.model).name
        columns.append(
            Column(run, cand, _scores(suite, cand.model), comparison.models[name], release_check(comparison, name))
        )
    return columns


def _start_table(start: str, name: str, runs: Sequence[Run]) -> StartTable:
    """One start's table; the start's scores come from the first run, the others are checked against it."""
    tasks: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    items: dict[str, Any] = {}
    spread: dict[str, float] = {}
    items_differ: list[str] = []
    columns: list[Column] = []
    for i, run in enumerate(runs):
        suite = read_suite(run.file)
        columns += _columns(run, suite)
        if i == 0:
            tasks, first, items = suite.tasks, _scores(suite, start), _items(suite, start)
            continue
        if _task_key(suite.tasks) != _task_key(tasks):
            raise ValueError(f"{run.file}: its task list differs from {runs[0].file.name}'s (not the same suite)")
        for task, score in _scores(suite, start).items():
            if task in first:
                spread[task] = max(spread.get(task, 0.0), abs(score - first[task]))
        for task, data in _items(suite, start).items():
            if task in items and data != items[task] and task not in items_differ:
                items_differ.append(task)
    return StartTable(name, start, tasks, first, spread, items_differ, columns)


def build_tables(manifest: Manifest) -> list[StartTable]:
    tables = []
    for start, name in manifest.starts.items():
        runs = [r for r in manifest.runs if r.start == start]
        if runs:
            tables.append(_start_table(start, name, runs))
    return tables


# ---- markdown ----------------------------------------------------------------------------------------
def _mean(scores: Mapping[str, float], names: Sequence[str]) -> tuple[float | None, int]:
    present = [scores[n] for n in names if n in scores and not math.isnan(scores[n])]
    return (sum(present) / len(present) if present else None), len(present)


def _score_cell(value: float | None, n: int = 0, of: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" + (f" ({n}/{of})" if n != of else "")


def _diff_cell(iv: Interval | None) -> str:
    if iv is None:
        return "-"
    text = f"{iv.diff:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]"
    return f"**{text}**" if iv.above_zero or iv.below_zero else text


def _verdict(rule: ReleaseCheck) -> str:
    if rule.passed:
        return "passes"
    reasons = []
    if not rule.out_of_training.above_zero:
        reasons.append("out-of-training not above noise")
    reasons += [f"{FORMAT_LABELS[f]} lower beyond noise" for f, iv in rule.formats.items() if iv.below_zero]
    return "**refused** (" + "; ".join(reasons) + ")"


def start_markdown(table: StartTable) -> str:
    groups = group_members(table.tasks)
    cols = table.columns
    pct = int(round(table.confidence * 100))
    lines = [
        f"#### {table.name} (start) and its {len(cols)} candidates",
        "",
        "| column | round | recipe | results file | release rule | shipped |",
        "|---|---|---|---|---|---|",
    ]
    for c in cols:
        shipped = c.candidate.shipped_note or c.candidate.shipped or "-"
        lines.append(
            f"| {c.short} | {c.run.round} | {c.candidate.recipe} | `{c.run.file.name}` "
            f"(`{c.candidate.model}`) | {_verdict(c.rule)} | {shipped} |"
        )
    lines += [
        "",
        f"Scores (main metric x 100); start: `{table.model}` in `{table.columns[0].run.file.name}`"
        + (" (see the note below on the other files' runs of it)" if any(v > 0 for v in table.spread.values()) else "")
        + ":",
        "",
        "| task | format | train | metric | " + f"{table.name} (start) | " + " | ".join(c.header for c in cols) + " |",
        "|" + "---|" * (5 + len(cols)),
    ]
    for task in table.tasks:
        name = task["name"]
        fmt = FORMAT_LABELS.get(task["type"], task["type"])
        mark = "in" if task["in_training"] else "out"
        cells = [_score_cell(table.scores.get(name))] + [_score_cell(c.scores.get(name)) for c in cols]
        lines.append(f"| {name} | {fmt} | {mark} | {task['main_metric']} | " + " | ".join(cells) + " |")
    for group in SCORE_GROUPS:
        names = groups[group]
        if not names:
            continue
        cells = [_score_cell(*_mean(s, names), len(names)) for s in [table.scores, *(c.scores for c in cols)]]
        lines.append(f"| **{group_label(group)}** ({len(names)} tasks) | | | | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Differences vs {table.name} (paired bootstrap over items, {table.resamples} resamples, {pct}% interval; "
        "bold: the interval excludes 0; each candidate against the start of its own results file):",
        "",
        "| average | " + " | ".join(c.short for c in cols) + " |",
        "|" + "---|" * (1 + len(cols)),
    ]
    for group in DIFF_GROUPS:
        if not groups[group]:
            continue
        cells = [_diff_cell(c.differences.average(group)) for c in cols]
        lines.append(f"| {group_label(group)} ({len(groups[group])} tasks) | " + " | ".join(cells) + " |")
    lines.append("| release rule | " + " | ".join(_verdict(c.rule) for c in cols) + " |")
    lines.append("| shipped | " + " | ".join(c.candidate.shipped or "-" for c in cols) + " |")
    files = ", ".join(f"`{r.file.name}`" for r in dict.fromkeys(c.run for c in cols))
    differing = {t: v for t, v in table.spread.items() if v > 0}
    if differing or table.items_differ:
        found = []
        if table.items_differ:
            found.append(f"per-item results on {len(table.items_differ)} task(s) ({', '.join(table.items_differ)})")
        if differing:
            worst = ", ".join(f"{t} {v:.4f}" for t, v in sorted(differing.items(), key=lambda kv: -kv[1]))
            found.append(f"main scores on {len(differing)} (largest absolute difference, score x 100: {worst})")
        lines += [
            "",
            f"Note: the start was evaluated once per results file ({files}); the runs differ in its "
            + " and its ".join(found)
            + ". The start column shows the first file's run; each candidate's differences use its own file's run.",
        ]
    elif len({c.run.file for c in cols}) > 1:
        lines += ["", f"The start's per-item results are identical in every results file ({files})."]
    return "\n".join(lines) + "\n"


def unlisted_results(manifest: Manifest) -> list[Path]:
    """``results-*.json[.gz]`` files next to the listed ones that the manifest leaves out."""
    listed = {r.file.resolve() for r in manifest.runs}
    folders = dict.fromkeys(r.file.parent for r in manifest.runs)
    found = {
        p.resolve(): p for f in folders for pattern in ("results-*.json", "results-*.json.gz") for p in f.glob(pattern)
    }
    return sorted(p for key, p in found.items() if key not in listed)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def markdown(tables: Sequence[StartTable], manifest: Manifest, command: str, chart_link: str) -> str:
    files = ", ".join(f"`{r.file.name}`" for r in manifest.runs)
    folders = ", ".join(f"`{f}/`" for f in dict.fromkeys(_shown(r.file.parent) for r in manifest.runs))
    head = [
        f"### All candidates on every task (suite {manifest.suite})",
        "",
        f"`{command}` from the `sciembed evaluate` results in {folders}: {files} (GPU runs on one H200; "
        f"model names are the GPU machine's paths) and the manifest `{_shown(manifest.path)}` (which model "
        "is which candidate; a new round: list its file there and re-run the command). "
        "R*n*: the round of docs/TRAINING.md. Release rule (`sciembed train release --check`): against the "
        "start, out-of-training average above noise and no format's out-of-training average lower beyond "
        "noise.",
        "",
        f"![out-of-training difference vs the start, every candidate]({chart_link})",
        "",
    ]
    unlisted = unlisted_results(manifest)
    if unlisted:
        names = ", ".join(f"`{_shown(p)}`" for p in unlisted)
        head += [f"**Not in these tables** (results files that the manifest does not list): {names}.", ""]
    return "\n".join(head) + "\n" + "\n".join(start_markdown(t) for t in tables)


# ---- chart ----------------------------------------------------------------------------------------------
def chart(tables: Sequence[StartTable], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [max(1, len(t.columns)) for t in tables]
    fig, axes = plt.subplots(
        len(tables),
        1,
        figsize=(10, 1.6 + 0.4 * sum(heights)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
        sharex=True,
    )
    for ax, table in zip(axes[:, 0], tables, strict=True):
        for y, col in enumerate(reversed(table.columns)):
            iv = col.rule.out_of_training
            if col.candidate.shipped:
                style = {"color": "tab:green", "marker": "*", "markersize": 13}
            elif col.rule.passed:
                style = {"color": "tab:blue", "marker": "o", "markersize": 7}
            else:
                style = {"color": "tab:red", "marker": "X", "markersize": 8}
            ax.errorbar(
                iv.diff, y, xerr=[[iv.diff - iv.low], [iv.high - iv.diff]], capsize=3, linestyle="none", **style
            )
        labels = []
        for col in reversed(table.columns):
            tag = (
                f"shipped {col.candidate.shipped}"
                if col.candidate.shipped
                else ("passes" if col.rule.passed else "refused")
            )
            labels.append(f"{col.short} ({tag})")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.axvline(1.0, color="gray", linewidth=0.8, linestyle="--")
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_title(f"vs {table.name} (start)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    pct = int(round(tables[0].confidence * 100)) if tables else 95
    axes[-1, 0].set_xlabel(
        f"out-of-training average: candidate - start (x 100), {pct}% paired-bootstrap interval\n"
        "dashed: the issue's goal +1.0"
    )
    fig.suptitle("All candidates (green star: shipped, blue: passes the release rule, red: refused)", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def update_docs(docs: Path, section: str) -> None:
    """Put ``section`` between the docs file's markers (which must be there, once, in this order)."""
    text = docs.read_text()
    head, sep, rest = text.partition(DOCS_BEGIN)
    _, sep2, tail = rest.partition(DOCS_END)
    if not sep or not sep2 or DOCS_BEGIN in tail:
        raise ValueError(f"{docs}: needs one line {DOCS_BEGIN!r} and, after it, one line {DOCS_END!r}")
    atomic_write_bytes(docs, (head + DOCS_BEGIN + "\n" + section + "\n" + DOCS_END + tail).encode())


def write(manifest_path: Path, out: Path, command: str, docs: Path | None = None) -> tuple[Path, Path]:
    manifest = load_manifest(manifest_path)
    tables = build_tables(manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    md, png = out.with_name(out.name + ".md"), out.with_name(out.name + ".png")
    chart(tables, png)
    atomic_write_bytes(md, markdown(tables, manifest, command, png.name).encode())
    if docs is not None:
        link = Path(os.path.relpath(png.resolve(), docs.resolve().parent)).as_posix()
        update_docs(docs, markdown(tables, manifest, command, link))
    return md, png


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "candidates.json")
    parser.add_argument("--out", type=Path, default=HERE / "all-candidates", help="writes OUT.md and OUT.png")
    parser.add_argument("--docs", type=Path, help="also put the tables between the markers of this file")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    command = " ".join(["python scripts/generalise_table.py", *argv])
    try:
        md, png = write(args.manifest, args.out, command, args.docs)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in unlisted_results(load_manifest(args.manifest)):
        print(f"warning: {path} is not in the manifest, so not in the tables", file=sys.stderr)
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
