"""The GPU job's head start: a trivial Triton kernel on a thread, only for CUDA devices."""

from __future__ import annotations

import torch
from isolated_venv import run_in_triton_interpreter

from sciembed.model.gpu_warmup import warm_up_in_background

CHECK = r"""
from sciembed.model.gpu_warmup import _warm_up
x = _warm_up("cpu")  # the interpreter runs the kernel on a CPU tensor
assert x is not None and x.tolist() == [1.0] * 16, x
assert _warm_up("no-such-device") is None  # never raises: the job's own forward reports real errors
print("warm-up ok")
"""


def test_the_warm_up_kernel_runs_and_failures_are_quiet():
    assert "warm-up ok" in run_in_triton_interpreter(CHECK)


def test_no_thread_for_a_cpu_job_or_without_cuda():
    assert warm_up_in_background(None) is None
    assert warm_up_in_background("cpu") is None
    assert warm_up_in_background(torch.device("cpu")) is None
    if not torch.cuda.is_available():
        assert warm_up_in_background("cuda") is None
