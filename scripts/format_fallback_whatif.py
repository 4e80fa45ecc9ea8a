"""What-if: a candidate whose FORMATS are served by the frozen base, scored from stored per-item results.

    python scripts/format_fallback_whatif.py --format proximity,adhoc_query \
        benchmarks/results/generalise/results-mpnet.json.gz \
        benchmarks/results/generalise/results-mpnet-distill.json.gz \
        --out benchmarks/results/generalise/proximity-from-base-mpnet.md

For a candidate trained with a frozen base (adapters only), serving formats with the base alone
gives exactly the start's embeddings in those formats, so a task whose every embedding is in those
formats carries the start's per-item results. A task embeds with more than one format when it is
ad-hoc search: its documents use proximity and its queries adhoc_query. Serving only one of the two
by the base gives a model whose search results were never computed, so the script refuses it and
names the tasks (serve both, or neither). This builds that variant of every candidate in each
results file (the first model is the start), runs the same paired bootstrap as ``sciembed evaluate``
and the release rule, and writes a markdown table. It is an analysis of runs already made, chosen
after their results were seen: a variant that passes here is a recipe to pre-register and re-run,
not a model to ship. Candidates with a low-rank or full delta are marked: for them the base is not
the start, so the what-if does not describe a model that exists.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from sciembed.data.atomic import atomic_write_bytes
from sciembed.evaluate.benchmark import read_results_json
from sciembed.evaluate.bootstrap import compare_models
from sciembed.evaluate.registry import TYPE_FORMATS
from sciembed.evaluate.results import SuiteResult
from sciembed.model.formats import canonical_format
from sciembed.train.multitask.release import release_check

GROUPS = ("out_of_training", "out_of_training/classification", "out_of_training/regression")


def task_formats(task_type: str) -> set[str]:
    """The model formats a task of ``task_type`` embeds with (search: documents and queries)."""
    used = {TYPE_FORMATS[task_type]}
    if task_type == "adhoc_search":
        used.add("adhoc_query")
    return used


def served_tasks(tasks: list[dict], served: set[str]) -> list[str]:
    """Names of the tasks whose every embedding is in ``served``; a ValueError where only part is."""
    whole, partial = [], []
    for task in tasks:
        used = task_formats(task["type"])
        if used <= served:
            whole.append(task["name"])
        elif used & served:
            partial.append(f"{task['name']} (needs {', '.join(sorted(used - served))} too)")
    if partial:
        raise ValueError(
            f"serving {', '.join(sorted(served))} by the base changes only part of {len(partial)} task(s), "
            f"whose results were never computed: {'; '.join(partial)}"
        )
    if not whole:
        raise ValueError(f"no task embeds only with {', '.join(sorted(served))}")
    return whole


def with_fallback(results: dict, served: set[str]) -> tuple[dict, list[tuple[str, str]]]:
    """``results`` with, after each candidate, its variant whose ``served`` tasks carry the start's items."""
    start, candidates = results["models"][0], results["models"][1:]
    names = served_tasks(results["tasks"], served)
    label = "+".join(sorted(served))
    models, pairs = [start], []
    for model in candidates:
        variant = copy.deepcopy(model)
        variant["name"] = variant["spec"] = f"{model['name']} [{label} from base]"
        for name in names:
            variant["tasks"][name] = copy.deepcopy(start["tasks"][name])
        models += [model, variant]
        pairs.append((model["name"], variant["name"]))
    return {**results, "models": models, "comparisons": None}, pairs


def parse_formats(text: str) -> set[str]:
    """``proximity,adhoc_query`` (any alias sciembed accepts, e.g. search, [QRY]) -> canonical names."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("--format names no format")
    return {canonical_format(name) for name in names}


def _cell(averages: dict, group: str) -> str:
    entry = averages.get(group)
    iv = entry.interval if entry is not None else None
    if iv is None:
        return "-"
    text = f"{iv.diff:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}]"
    return f"**{text}**" if iv.low > 0 or iv.high < 0 else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="sciembed evaluate results (.json or .json.gz)")
    parser.add_argument(
        "--format", default="proximity,adhoc_query", help="the formats served by the base, comma-separated"
    )
    parser.add_argument("--delta", nargs="*", default=["lora"], help="name parts of candidates with a delta")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        served = parse_formats(args.format)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fmt = "+".join(sorted(served))
    groups = (*GROUPS, "out_of_training/proximity", "out_of_training/adhoc_search", "in_training")
    header = ["results file", "candidate", "served by the base"] + [g.replace("_", "-") for g in groups] + ["rule"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path in args.results:
        try:
            raw = read_results_json(path)
        except (OSError, EOFError, json.JSONDecodeError) as exc:
            print(f"error: {path}: not a readable results file ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 2
        try:
            results, pairs = with_fallback(raw, served)
        except (ValueError, KeyError, IndexError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 2
        comparison = compare_models(SuiteResult.from_json(results), results["models"][0]["name"])
        for original, variant in pairs:
            delta = any(part in original for part in args.delta)
            marked = fmt + (" (has a delta: not a real model)" if delta else "")
            for name, served_by in ((original, "-"), (variant, marked)):
                averages = comparison.models[name].averages
                rule = release_check(comparison, name)
                verdict = "passes" if rule.passed else "refused"
                cells = [path.name, f"`{original}`", served_by] + [_cell(averages, g) for g in groups] + [verdict]
                lines.append("| " + " | ".join(cells) + " |")
    note = (
        f"\nDifferences vs the start (paired bootstrap, {comparison.n_boot} resamples, "
        f"{comparison.confidence:.0%} interval; bold: excludes 0). Rows '{fmt}': the same candidate with "
        f"{fmt} served by the frozen base (every task embedded only in these formats carries the start's "
        "per-item results; search tasks embed documents as proximity and queries as adhoc_query). "
        "A what-if over runs already seen, not a release.\n"
    )
    atomic_write_bytes(args.out, ("\n".join(lines) + "\n" + note).encode("utf-8"))
    print("\n".join(lines) + "\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
