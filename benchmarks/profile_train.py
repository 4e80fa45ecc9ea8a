"""Where a stage-1 training step's time goes: wall time per step, torch.profiler ops, cProfile.

python benchmarks/profile_train.py --model minilm --init out/carry/minilm-fp16 --tokens runs/gpu/train.tok.npz
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_speed  # noqa: E402

from sciembed.train.config import BaseTrainConfig, OptimConfig  # noqa: E402
from sciembed.train.loop import Trainer  # noqa: E402
from sciembed.train.stage1 import TripletTask, load_tokens  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--init", default=None)
    parser.add_argument("--tokens", default="runs/gpu/train.tok.npz")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    device = torch.device("cuda")
    model = train_speed.build_model(args.model, args.init, 512)
    data = load_tokens(args.tokens)
    with tempfile.TemporaryDirectory() as tmp:
        config = BaseTrainConfig(output_dir=tmp, train_triplets="-", batch_size=args.batch_size, device="cuda",
                                 progress=False, optim=OptimConfig(lr=2e-5, warmup_ratio=0.0))  # fmt: skip
        task = TripletTask(model, data, config, device)
        trainer = Trainer(config, task.module, task, log=lambda _: None)
        batches = list(task.batches(0))
        for batch in batches[:5]:
            trainer.train_step(batch)
        torch.cuda.synchronize()
        run = batches[5 : 5 + args.steps]
        start = time.perf_counter()
        for batch in run:
            trainer.train_step(batch)
        host = time.perf_counter() - start
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
        docs = sum(int(data.lengths[data.triplets[b]].sum()) for b in run)
        print(f"{args.model}: {len(run)} steps, {wall / len(run) * 1e3:.1f} ms/step wall "
              f"({host / len(run) * 1e3:.1f} ms/step host before the final sync), "
              f"{len(run) * args.batch_size / wall:.0f} triplets/s, {docs / len(run):.0f} tokens/step")  # fmt: skip
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for batch in run[:10]:
                trainer.train_step(batch)
            torch.cuda.synchronize()
        averages = prof.key_averages()
        print(averages.table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=55))
        print(averages.table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=55))
        profiler = cProfile.Profile()
        profiler.enable()
        for batch in run[:20]:
            trainer.train_step(batch)
        torch.cuda.synchronize()
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue()[-6000:])


if __name__ == "__main__":
    main()
