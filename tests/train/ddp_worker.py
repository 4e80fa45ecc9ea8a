"""Run under ``torchrun`` by test_ddp.py: gradients of one global batch through the trainer's DDP path.

Usage: ddp_worker.py INIT_MODEL_FOLDER TRAIN_TRIPLETS OUTPUT_FILE
Every rank computes its shards; rank 0 writes the (all-reduced) gradients and the summed loss.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from sciembed.model import load_model
from sciembed.train.config import BaseTrainConfig
from sciembed.train.distributed import all_reduce_sum, cleanup, init_distributed
from sciembed.train.loop import Trainer
from sciembed.train.stage1 import TripletTask, tokenize_triplets


def ddp_config(output_dir: str, train: str) -> BaseTrainConfig:
    return BaseTrainConfig(
        output_dir=output_dir,
        train_triplets=train,
        batch_size=6,  # micro-batches of 3: shards of 2 and 1 (uneven on purpose)
        grad_accum_steps=2,
        max_length=64,
        progress=False,
        device="cpu",
        group_buffer_batches=2,
    )


def batch_gradients(init: str, train: str, output_dir: str):
    """Gradients (by parameter name) and the global summed loss of epoch 0's first batch."""
    torch.set_num_threads(1)
    config = ddp_config(output_dir, train)
    info = init_distributed("cpu")
    try:
        model = load_model(init)
        model.config.max_length = config.max_length
        data = tokenize_triplets(model, train)
        task = TripletTask(model, data, config, info.device)
        trainer = Trainer(config, task.module, task, dist=info, log=lambda _: None)
        batch = next(iter(task.batches(0)))
        loss = all_reduce_sum(trainer.accumulate(batch), info)
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
        return grads, loss, info
    finally:
        if info.distributed:
            torch.distributed.barrier()
        cleanup(info)


def main() -> None:
    init, train, out = sys.argv[1:4]
    grads, loss, info = batch_gradients(init, train, str(Path(out).parent / "run"))
    if info.rank == 0:
        torch.save({"grads": grads, "loss": loss, "world_size": info.world_size}, out)


if __name__ == "__main__":
    main()
