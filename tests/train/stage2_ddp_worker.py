"""Run under ``torchrun`` by test_multitask.py: stage 2 (adapters) through the loop's DDP path.

Usage: stage2_ddp_worker.py CONFIG_YAML BASE_FOLDER OUTPUT_DIR
Every rank writes its trainable weights (adapters and heads) after training to OUTPUT_DIR/rank-R.pt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from sciembed.model import load_model
from sciembed.train.multitask import load_stage2_config, train_stage2


def main() -> None:
    config_path, base, output = sys.argv[1:4]
    torch.set_num_threads(1)
    config = load_stage2_config(config_path)
    model = load_model(base)
    result = train_stage2(config, model, output, device="cpu", log=None)
    rank = int(os.environ.get("RANK", "0"))
    state = {f"adapters.{k}": v for k, v in model.adapters.state_dict().items()}
    state.update({f"base.{k}": v for k, v in model.base.state_dict().items()})
    torch.save({"state": state, "steps": result.steps}, Path(output) / f"rank-{rank}.pt")


if __name__ == "__main__":
    main()
