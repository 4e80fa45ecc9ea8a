"""Stage 1's unpadded (packed) loss equals the padded-chunk loss, gradients included (CPU, no dropout)."""

from __future__ import annotations

import pytest
import torch
from trainhelpers import tiny_train_model, write_tiny_triplets

from sciembed.train.config import BaseTrainConfig
from sciembed.train.stage1 import TripletTask, tokenize_triplets


@pytest.mark.parametrize("lora", [False, True])
def test_packed_loss_and_gradients_match_padded_chunks(tmp_path, lora):
    """With ``lora`` the weights are parametrised (W + B A): the packed forward, which reads
    ``linear.weight`` itself, must see and differentiate the same merged weights."""
    write_tiny_triplets(tmp_path / "t.jsonl", 24, seed=3)
    model = tiny_train_model(dropout=0.0)
    data = tokenize_triplets(model, tmp_path / "t.jsonl")
    config = BaseTrainConfig(output_dir=str(tmp_path / "out"), train_triplets="-", batch_size=8, device="cpu")
    if lora:
        from sciembed.model.delta import DeltaConfig
        from sciembed.train.lowrank import attach_lowrank

        for update in attach_lowrank(model, DeltaConfig(rank=2, alpha=4.0)).values():
            torch.nn.init.normal_(update.lora_B, std=0.1)  # non-zero B: A gets gradients too
    assert not TripletTask(model, data, config, torch.device("cpu")).packed  # CPU default: the padded chunks
    items = list(range(12))
    results = []
    for packed in (False, True):
        task = TripletTask(model, data, config, torch.device("cpu"), packed=packed)
        model.zero_grad()
        loss = task.loss(task.module, items)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (ref, ref_grads), (out, grads) = results
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert grads.keys() == ref_grads.keys()
    assert not lora or (ref_grads and all("lora_" in name for name in ref_grads))
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-3)
