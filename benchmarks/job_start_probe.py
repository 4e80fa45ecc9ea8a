"""Where an embedding job's start goes on the GPU: the model's move (CUDA's start, the weights' copy)
and the numerics probe (``embed/numerics.py``: the job's first forward), each timed in a fresh
process and the probe profiled with cProfile (host-side Python, the first launches of each kernel).

    python benchmarks/job_start_probe.py --base-folder /root/minilm --out $OUT/start

Writes ``job_start_probe.json`` and ``job_start_probe-profile.txt`` (cumulative and own time).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from start_timing import Steps, profile_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-folder", type=Path, default=None)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    steps = Steps()
    mark = steps.mark

    import torch

    from sciembed import EncodeOptions
    from sciembed.embed.numerics import vectors_digest

    mark("import torch + sciembed")
    from quality_guard_gpu import _load_for_gpu

    model = _load_for_gpu(str(REPO / "models" / "sciembed-minilm"), args.base_folder)
    mark("load model (CPU)")
    torch.cuda.init()
    torch.zeros(1, device=args.device)
    mark("CUDA start (init + first tensor)")
    model.place(args.device)
    torch.cuda.synchronize()
    mark("place (weights to the GPU)")
    options = EncodeOptions(device=args.device, compile=False, progress=False)
    profiler = cProfile.Profile()
    first = profiler.runcall(vectors_digest, model, "proximity", options)
    torch.cuda.synchronize()
    mark("probe 1 (profiled)")
    second = vectors_digest(model, "proximity", options)
    torch.cuda.synchronize()
    mark("probe 2")
    (args.out / "job_start_probe-profile.txt").write_text(profile_text(profiler))
    result = {"device": torch.cuda.get_device_name(), "seconds": steps.seconds, "same_digest": first == second}
    (args.out / "job_start_probe.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
