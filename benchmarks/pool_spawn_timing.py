"""How long the tokeniser pool takes to start, before and after the process has initialised CUDA.

Each case runs in a fresh process: ``before`` starts a pool of ``--workers`` processes first thing,
``after`` first initialises CUDA and puts the shipped model on the GPU (as ``embed_file`` does before
its first chunk). Prints seconds until the pool is ``ready`` (every worker answers).

    python benchmarks/pool_spawn_timing.py --base-folder MINILM_FP16 --workers 4,8 --out $OUT/spawn
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _child(case: str, workers: int, base_folder: str | None) -> dict:
    from sciembed.engine.processes import TokenizerPool

    spec = (Path(base_folder) / "tokenizer.json").read_text() if base_folder else None
    model_s = 0.0
    if case == "after":
        import torch
        from quality_guard_gpu import _load_for_gpu

        begun = time.perf_counter()
        model = _load_for_gpu(str(REPO / "models" / "sciembed-minilm"), Path(base_folder) if base_folder else None)
        model.place("cuda", None)
        torch.cuda.synchronize()
        model_s = time.perf_counter() - begun
    begun = time.perf_counter()
    pool = TokenizerPool(spec, 512, workers)
    while not pool.ready:
        time.sleep(0.01)
    ready_s = time.perf_counter() - begun
    pool.close()
    return {"case": case, "workers": workers, "ready_s": round(ready_s, 3), "model_to_gpu_s": round(model_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-folder", default=None)
    parser.add_argument("--workers", default="4,8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print("RESULT " + json.dumps(_child(args.case, args.one, args.base_folder)), flush=True)
        return
    rows = []
    for round_ in range(1, args.rounds + 1):
        for workers in map(int, args.workers.split(",")):
            for case in ("before", "after"):
                cmd = [sys.executable, __file__, "--case", case, "--one", str(workers)]
                cmd += ["--base-folder", args.base_folder] if args.base_folder else []
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{case} failed:\n{proc.stderr[-3000:]}")
                row = {"round": round_, **json.loads(proc.stdout.split("RESULT ", 1)[1].splitlines()[0])}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "argv": sys.argv[1:]}
        (args.out / "pool_spawn_timing.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
