"""Where a fresh process's model load goes: imports (torch, transformers, sciembed), then the model's
load (by default the shipped one: registry base + delta + adapters) profiled with cProfile, then a
second load in the same process (what is left once the imports and first-use caches are warm).

    python benchmarks/load_probe.py --out benchmarks/results/load-probe/cpu            # here
    python3 benchmarks/load_probe.py --base-folder /root/minilm --out $OUT/load        # GPU machine: a base folder
    python3 benchmarks/load_probe.py --model TINY_BERT_FOLDER --out $OUT/load          # or any plain model folder

Writes ``load_probe.json`` (seconds per step) and ``load_probe-profile.txt`` (cumulative and own time).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from start_timing import Steps, profile_text  # noqa: E402

sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-folder", type=Path, default=None, help="stands in for the registry base")
    parser.add_argument("--model", default=str(REPO / "models" / "sciembed-minilm"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    steps = Steps()
    mark = steps.mark

    import torch

    mark("import torch")
    import transformers

    mark("import transformers")
    import sciembed.model  # noqa: F401

    mark("import sciembed.model")
    from quality_guard_gpu import _load_for_gpu

    profiler = cProfile.Profile()
    profiler.runcall(_load_for_gpu, args.model, args.base_folder)
    mark("load the model (profiled)")
    _load_for_gpu(args.model, args.base_folder)
    mark("load it again (same process)")
    info = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seconds": steps.seconds,
    }
    (args.out / "load_probe.json").write_text(json.dumps(info, indent=1) + "\n")
    (args.out / "load_probe-profile.txt").write_text(profile_text(profiler))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
