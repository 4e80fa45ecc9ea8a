"""DDP on CPU (gloo): 2 processes under torchrun give the gradients of one process on the same global batch."""
# ruff: noqa: F811  (pytest fixtures imported from trainhelpers are redefined as arguments)

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_worker import batch_gradients
from trainhelpers import one_thread, tiny_train_model, triplet_files  # noqa: F401  (fixtures)

from sciembed.model import save_model

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def no_dropout_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp") / "tiny-no-dropout"
    save_model(tiny_train_model(dropout=0.0), folder)
    return folder


def test_two_gloo_processes_match_single_process_gradients(tmp_path, no_dropout_folder, triplet_files, one_thread):
    train, _ = triplet_files
    out = tmp_path / "ddp.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKER.parent), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        str(WORKER), str(no_dropout_folder), str(train), str(out),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)
    assert ddp["world_size"] == 2

    single_grads, single_loss, info = batch_gradients(str(no_dropout_folder), str(train), str(tmp_path / "single"))
    assert info.world_size == 1
    torch.testing.assert_close(ddp["loss"], single_loss, rtol=1e-5, atol=1e-6)
    assert ddp["grads"].keys() == single_grads.keys()
    # absolute tolerance on the scale of all gradients: some are ~0 in exact arithmetic (e.g. the
    # attention key bias, to which softmax is invariant) and only rounding noise in practice
    scale = max(float(g.abs().max()) for g in single_grads.values())
    nonzero = 0
    for name, grad in single_grads.items():
        assert torch.allclose(ddp["grads"][name], grad, rtol=1e-4, atol=1e-5 * scale), (
            name,
            float((ddp["grads"][name] - grad).abs().max()),
        )
        nonzero += bool(grad.abs().sum() > 0)
    assert nonzero > len(single_grads) // 2
