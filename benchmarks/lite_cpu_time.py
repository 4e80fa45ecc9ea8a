"""Time the full sciembed-lite run on CPU and write the numbers into docs/BENCHMARK.md.

    .venv/bin/python benchmarks/lite_cpu_time.py [--models bm25 minilm random] [--threads 2]

Runs ``sciembed evaluate --model bm25 --model minilm --model random --tasks lite`` as a subprocess
on the CPU, cold (fresh lite folder and a fresh embedding cache, so the task build and every
embedding are timed), then once more warm (same cache: the run only re-scores). Records wall time,
the subprocess's CPU time (user + sys), the machine's core count and load average, and per-model /
per-task times from ``results.json``. Outputs: ``benchmarks/results/lite/`` (results.json,
results.md, results.png, timing.json) and the generated section of ``docs/BENCHMARK.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "lite"
DOC = REPO / "docs" / "BENCHMARK.md"
START, END = "<!-- lite-results:start -->", "<!-- lite-results:end -->"
LIMIT_S = 15 * 60


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "sciembed"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "sciembed.evaluate"]


def timed_run(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"the evaluate run failed with exit code {proc.returncode}")
    sys.stderr.write(proc.stderr[-4000:])
    return {
        "wall_s": round(wall, 1),
        "cpu_user_s": round(after.ru_utime - before.ru_utime, 1),
        "cpu_sys_s": round(after.ru_stime - before.ru_stime, 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def render(timing: dict, report: dict, table: str) -> str:
    cold, warm = timing["cold"], timing["warm"]
    cpu = cold["cpu_user_s"] + cold["cpu_sys_s"]
    shared_note = ""
    if cold["load_avg_before"][0] > timing["cores"] or cold["load_avg_after"][0] > timing["cores"]:
        shared_note = (
            " (the machine was shared with other jobs during the run - load average above the core count - so"
            " the wall time overstates what a dedicated machine needs)"
        )
    lines = [
        START,
        f"Measured {timing['date']} on {timing['machine']} ({timing['cores']} cores visible, torch threads "
        f"{timing['threads']}), command `{timing['command']}`.",
        "",
        "| run | wall | CPU (user + sys) | load average before -> after |",
        "|---|---|---|---|",
        f"| cold (lite build + all embeddings) | {_fmt_s(cold['wall_s'])} | {_fmt_s(cpu)} | "
        f"{cold['load_avg_before'][0]} -> {cold['load_avg_after'][0]} |",
        f"| warm (embedding cache: re-score only) | {_fmt_s(warm['wall_s'])} | "
        f"{_fmt_s(warm['cpu_user_s'] + warm['cpu_sys_s'])} | {warm['load_avg_before'][0]} -> "
        f"{warm['load_avg_after'][0]} |",
        "",
        f"Limit: {LIMIT_S // 60} min for the whole cold run. Wall time: "
        f"{'within' if cold['wall_s'] < LIMIT_S else 'OVER'} the limit; CPU time / {timing['cores']} cores = "
        f"{_fmt_s(cpu / timing['cores'])}: {'within' if cpu / timing['cores'] < LIMIT_S else 'OVER'} the limit"
        f"{shared_note}.",
        "",
        "Per model (cold run):",
        "",
        "| model | load | total | embedded texts | from cache |",
        "|---|---|---|---|---|",
    ]
    for model in report["models"]:
        t, e = model.get("timing", {}), model.get("embeddings", {})
        lines.append(
            f"| {model['name']} | {t.get('load_s', 0):.1f} s | {t.get('total_s', 0):.1f} s | "
            f"{e.get('computed', 0)} | {e.get('from_cache', 0)} |"
        )
    lines += [
        "",
        "Per task (cold run, seconds: embedding + scoring):",
        "",
        "| task | " + " | ".join(m["name"] for m in report["models"]) + " |",
        "|---|" + "---|" * len(report["models"]),
    ]
    for task in report["tasks"]:
        cells = []
        for model in report["models"]:
            res = model["tasks"].get(task["name"], {})
            cells.append(
                f"{res.get('timing', {}).get('total_s', 0):.1f}"
                if res.get("status") == "ok"
                else res.get("status", "-")
            )
        lines.append(f"| {task['name']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Scores (main metric x 100; full metrics in `benchmarks/results/lite/results.json`):",
        "",
        table.strip(),
        "",
        "![sciembed-lite scores](../benchmarks/results/lite/results.png)",
        END,
    ]
    return "\n".join(lines)


def update_doc(section: str) -> None:
    """Replace the generated section of docs/BENCHMARK.md (or append it)."""
    text = DOC.read_text() if DOC.is_file() else "# Benchmark\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["bm25", "minilm", "random"])
    parser.add_argument("--threads", type=int, default=None, help="torch / BLAS threads (default: all cores)")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/BENCHMARK.md")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite docs/BENCHMARK.md from benchmarks/results/lite/ (no run)",
    )
    args = parser.parse_args()
    if args.render_only:
        timing = json.loads((RESULTS / "timing.json").read_text())
        report = json.loads((RESULTS / "results.json").read_text())
        update_doc(render(timing, report, (RESULTS / "results.md").read_text()))
        return
    work = Path(tempfile.mkdtemp(prefix="sciembed-lite-bench-"))
    env = dict(os.environ, SCIEMBED_LITE_DIR=str(work / "lite"), CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    out = work / "out"
    cmd = [
        *_cli(),
        "evaluate",
        *[x for m in args.models for x in ("--model", m)],
        "--tasks",
        "lite",
        "--output",
        str(out),
        "--cache-dir",
        str(work / "cache"),
        "--device",
        "cpu",
    ]
    print("cold run:", " ".join(cmd), file=sys.stderr)
    cold = timed_run(cmd, env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "results.md", "results.png"):
        shutil.copy(out / name, RESULTS / name)
    report = json.loads((out / "results.json").read_text())
    print("warm run (cached embeddings)", file=sys.stderr)
    warm = timed_run(cmd[:-2] + ["--output", str(work / "out-warm"), "--device", "cpu"], env)
    import torch

    timing = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{_cpu_model()}, Python {platform.python_version()}",
        "cores": os.cpu_count(),
        "threads": args.threads or torch.get_num_threads(),
        "command": "sciembed evaluate " + " ".join(f"--model {m}" for m in args.models) + " --tasks lite --device cpu",
        "cold": cold,
        "warm": warm,
    }
    (RESULTS / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    section = render(timing, report, (RESULTS / "results.md").read_text())
    if not args.no_doc:
        update_doc(section)
    print(section)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
