"""The fused add + LayerNorm Triton kernel itself, run on the CPU through Triton's interpreter.

CI has no GPU, and the library only launches the kernel on CUDA; ``TRITON_INTERPRET=1`` executes the
same kernel source on CPU tensors, so its arithmetic (two or three terms, masked widths, half
precision inputs) is checked against the modules here. Triton is installed into an isolated folder
(the version the GPU machine runs), never into the project's environment.
"""

from __future__ import annotations

from isolated_venv import run_in_triton_interpreter

CHECK = r"""
import torch
from torch import nn
from sciembed.model.fused_norm import NormLaunch, launch_add_layer_norm

torch.manual_seed(0)
for n, dtype, tol in ((48, torch.float32, 2e-6), (64, torch.float32, 2e-6), (48, torch.float16, 2e-3)):
    ln = nn.LayerNorm(n)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
        x, residual, extra = (torch.randn(7, n).to(dtype) for _ in range(3))
        # the reference sums in fp32, as the kernel does, then rounds once
        f = lambda t: t.float()
        # one row per program, and several (7 rows: the last program's rows are partly masked)
        for terms, launch in ((2, None), (3, None), (2, NormLaunch(4, 4)), (3, NormLaunch(2, 2))):
            got = launch_add_layer_norm(x, residual, ln, extra if terms == 3 else None, launch)
            want = ln(f(x) + f(residual) + (f(extra) if terms == 3 else 0)).to(dtype)
            assert got.dtype == dtype and got.shape == x.shape
            err = (got.float() - want.float()).abs().max().item()
            assert err <= tol, (n, dtype, terms, launch, err)
            # the third term is really read: leaving it out changes the result
            if terms == 3:
                two = launch_add_layer_norm(x, residual, ln)
                assert (got.float() - two.float()).abs().max().item() > 0.1
        empty = launch_add_layer_norm(x[:0], residual[:0], ln)
        assert empty.shape == (0, n)
print("kernel ok")
"""


def test_the_kernel_computes_the_norm_of_the_sum_of_two_or_three_terms():
    assert "kernel ok" in run_in_triton_interpreter(CHECK)
