"""Where an embedding job of new papers loses time against ``encode``: one fresh process per mode.

Every mode embeds the same new papers (read into memory first, not timed), the shipped model, default
options, cold tokeniser memories and a fresh tokeniser pool:

* ``chunks``: ``encode`` once per ``--chunk`` papers in turn (what ``sciembed embed`` does, without
  its reading and writing); per call: seconds and the wait for the host side;
* ``chunks-read``: the same, with a thread re-reading the input file meanwhile (the job's reader
  thread: JSON parsing holds the GIL against the thread that launches kernels);
* ``one-call``: one ``encode`` over all papers (no per-call pipeline fill and drain);
* ``one-call-warm``: ``one-call`` twice in one process, the second timed (warm chunk memories);
* ``tokenize``: the engine's host side alone, no model run (``host_batches`` with the same plan).

    python benchmarks/job_host_probe.py --input papers-2025-2026.jsonl.gz --base-folder MINILM_FP16 --out $OUT/host

Writes ``job_host_probe.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
MODES = ("chunks", "chunks-read", "one-call", "one-call-warm", "tokenize")


def _reread(path: Path, stop: threading.Event) -> None:
    from sciembed.data import read_papers

    while not stop.is_set():
        for _ in read_papers(path):
            if stop.is_set():
                return


def _child(args: argparse.Namespace) -> dict:
    import torch
    from quality_guard_gpu import _load_for_gpu

    from sciembed.data import read_papers
    from sciembed.engine import EncodeOptions, run_encode

    papers = list(read_papers(args.input))
    model = _load_for_gpu(str(REPO / "models" / "sciembed-minilm"), args.base_folder)
    options = EncodeOptions(device=args.device, progress=False, tokenize_workers=args.workers)
    model.place(args.device, None)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    run_encode(model, papers[:2], "proximity", options)  # CUDA and the kernels start (the job's probe)
    sync()
    calls: list[tuple[float, float]] = []
    stop = threading.Event()
    if args.mode == "chunks-read":
        threading.Thread(target=_reread, args=(args.input, stop), daemon=True).start()
    started = time.perf_counter()
    if args.mode in ("chunks", "chunks-read"):
        for first in range(0, len(papers), args.chunk):
            result = run_encode(model, papers[first : first + args.chunk], "proximity", options)
            calls.append((result.seconds, result.wait_for_batches_s))
    elif args.mode in ("one-call", "one-call-warm"):
        if args.mode == "one-call-warm":
            run_encode(model, papers, "proximity", options)
            started = time.perf_counter()
        result = run_encode(model, papers, "proximity", options)
        calls.append((result.seconds, result.wait_for_batches_s))
    else:
        from sciembed.engine.backends import runner_for
        from sciembed.engine.run import host_batches, plan_batches

        runner = runner_for(model, model.adapter_for_format("proximity"), options)
        for first in range(0, len(papers), args.chunk):
            chunk = papers[first : first + args.chunk]
            begun = time.perf_counter()
            plan = plan_batches(runner, len(chunk), options, model)
            count = sum(1 for _ in host_batches(model, chunk, runner, plan))
            calls.append((time.perf_counter() - begun, 0.0))
    sync()
    seconds = time.perf_counter() - started
    stop.set()
    return {
        "mode": args.mode,
        "workers": args.workers,
        "papers": len(papers),
        "seconds": seconds,
        "docs_per_s": len(papers) / seconds,
        "calls_s": [round(c[0], 3) for c in calls],
        "host_wait_s": [round(c[1], 3) for c in calls],
        **({"batches_last_chunk": count} if args.mode == "tokenize" else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--base-folder", type=Path, default=None)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="tokeniser processes (default: automatic)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(_child(args)), flush=True)
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for round_ in range(1, args.rounds + 1):
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--mode", mode, "--input", str(args.input), "--chunk", str(args.chunk)]
            cmd += ["--device", args.device] + (["--base-folder", str(args.base_folder)] if args.base_folder else [])
            cmd += ["--workers", str(args.workers)] if args.workers is not None else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
            row = {"round": round_, **json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "argv": sys.argv[1:]}
    (args.out / "job_host_probe.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"`benchmarks/job_host_probe.py`, {meta['date']}",
        "",
        "| mode | tokeniser processes | round | papers | s | docs/s | calls s | of which waiting for the host s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r.get('workers') or 'auto'} | {r['round']} | {r['papers']:,} | "
            f"{r['seconds']:.2f} | {r['docs_per_s']:,.0f} | "
            f"{' '.join(f'{t:.2f}' for t in r['calls_s'])} | {' '.join(f'{t:.2f}' for t in r['host_wait_s'])} |"
        )
    (args.out / "job_host_probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
