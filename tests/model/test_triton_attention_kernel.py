"""sciembed's Triton attention kernel itself, run on the CPU through Triton's interpreter.

The library launches it only on CUDA (heads of 32, and one query per document under CLS pooling);
``TRITON_INTERPRET=1`` runs the same kernel source on CPU tensors, so its masking (documents shorter
than, equal to and longer than a tile, one-token documents), its online softmax and the first-token
mode are checked against per-document SDPA here, with the tiles the library uses.
"""

from __future__ import annotations

from isolated_venv import run_in_triton_interpreter

CHECK = r"""
import torch
from torch.nn import functional as F
from sciembed.model.packed import ATTENTION_TILES, FIRST_TOKEN_TILES, pack
from sciembed.model.triton_attention import TileConfig, launch_varlen_attention

torch.manual_seed(0)
lengths = (1, 31, 32, 33, 64, 70, 3)
packed = pack([list(range(5, 5 + n)) for n in lengths])
tokens = sum(lengths)
starts = packed.cu_seqlens[:-1].long()
one_each = torch.arange(len(lengths) + 1, dtype=torch.int32)
for heads, size in ((3, 32), (2, 64), (2, 16)):
    # q, k, v as views of one (T, 3, heads, size) projection, as in the model
    q, k, v = torch.randn(tokens, 3, heads, size).unbind(1)
    want = torch.empty(tokens, heads, size)
    for a, b in zip(packed.cu_seqlens[:-1].tolist(), packed.cu_seqlens[1:].tolist()):
        want[a:b] = F.scaled_dot_product_attention(*(x[a:b].transpose(0, 1) for x in (q, k, v))).transpose(0, 1)
    tiles = ATTENTION_TILES.get(size, TileConfig(32, 16))
    for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 3e-3)):
        qh, kh, vh = (x.to(dtype) for x in (q, k, v))
        got = launch_varlen_attention(qh, kh, vh, packed.cu_seqlens, packed.max_len, tiles)
        assert got.shape == want.shape and got.dtype == dtype
        err = (got.float() - want).abs().max().item()
        assert err <= tol, ("all tokens", size, dtype, err)
        first = FIRST_TOKEN_TILES.get(size, TileConfig(16, 32))
        got = launch_varlen_attention(qh[starts], kh, vh, packed.cu_seqlens, packed.max_len, first, one_each, 1)
        err = (got.float() - want[starts]).abs().max().item()
        assert got.shape == (len(lengths), heads, size) and err <= tol, ("first tokens", size, dtype, err)
    # each document attends only to itself: changing another document's keys changes nothing here
    k2 = k.clone()
    k2[packed.cu_seqlens[1] :] += 2.0 * torch.randn_like(k2[packed.cu_seqlens[1] :])
    cut = int(packed.cu_seqlens[1])
    got = launch_varlen_attention(q, k2, v, packed.cu_seqlens, packed.max_len, tiles)
    same = launch_varlen_attention(q, k, v, packed.cu_seqlens, packed.max_len, tiles)
    assert torch.equal(got[:cut], same[:cut])
    assert (got[cut:] - want[cut:]).abs().max().item() > 1e-2
# MPNet's relative position bias: bias[:, j - i + center] added to every score (both query modes)
from sciembed.model.packed import BIAS_TILES
from sciembed.model.relative_bias import bias_blocks
heads, size = 2, 64
q, k, v = torch.randn(tokens, 3, heads, size).unbind(1)
table = torch.randn(heads, 2 * packed.max_len + 1)  # wider than needed: the centre is the middle
want = torch.empty(tokens, heads, size)
for a, b in zip(packed.cu_seqlens[:-1].tolist(), packed.cu_seqlens[1:].tolist()):
    mask = bias_blocks(table, torch.arange(b - a), b - a)
    one = F.scaled_dot_product_attention(*(x[a:b].transpose(0, 1) for x in (q, k, v)), attn_mask=mask)
    want[a:b] = one.transpose(0, 1)
for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 3e-3)):
    qh, kh, vh = (x.to(dtype) for x in (q, k, v))
    got = launch_varlen_attention(qh, kh, vh, packed.cu_seqlens, packed.max_len, BIAS_TILES, bias=table)
    assert (got.float() - want).abs().max().item() <= tol, ("bias", dtype)
    first = TileConfig(16, 32)
    got = launch_varlen_attention(qh[starts], kh, vh, packed.cu_seqlens, packed.max_len, first, one_each, 1, table)
    assert (got.float() - want[starts]).abs().max().item() <= tol, ("bias, first tokens", dtype)
plain = launch_varlen_attention(q, k, v, packed.cu_seqlens, packed.max_len, BIAS_TILES)
assert (plain - want).abs().max().item() > 1e-2  # the bias matters
try:
    launch_varlen_attention(q, k, v, packed.cu_seqlens, packed.max_len, BIAS_TILES, bias=table[:, :10])
    raise AssertionError("a too narrow bias table was accepted")
except ValueError:
    pass
empty = launch_varlen_attention(q[:0], k[:0], v[:0], torch.zeros(1, dtype=torch.int32), 0)
assert empty.shape == (0, heads, size)
print("kernel ok")
"""


def test_the_kernel_matches_per_document_attention():
    assert "kernel ok" in run_in_triton_interpreter(CHECK)
