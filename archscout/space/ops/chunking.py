"""Chunking helpers shared by the chunkwise linear-attention ops.

Covers the layout changes ([B, T, H, ...] <-> [B, H, N, C, ...] with zero padding of the time axis),
the within-chunk causal and decay masks, and the unit-lower-triangular solve of the WY/UT transform.
It holds no recurrence of its own; each op file composes these pieces.
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_chunks(x: Tensor, chunk_size: int) -> Tensor:
    """[B, T, H, ...] -> [B, H, N, C, ...], zero-padding T up to N * C."""
    pad = -x.shape[1] % chunk_size
    if pad:
        x = torch.cat([x, x.new_zeros(x.shape[0], pad, *x.shape[2:])], dim=1)
    b, t = x.shape[:2]
    x = x.reshape(b, t // chunk_size, chunk_size, *x.shape[2:])  # [B, N, C, H, ...]
    return x.movedim(3, 1)  # [B, H, N, C, ...]


def from_chunks(x: Tensor, seq_len: int) -> Tensor:
    """[B, H, N, C, V] -> [B, seq_len, H, V], dropping the padded tail."""
    b, h, n, c = x.shape[:4]
    return x.movedim(1, 3).reshape(b, n * c, h, *x.shape[4:])[:, :seq_len]


def causal_mask(chunk_size: int, device: torch.device, diagonal: int = 0) -> Tensor:
    """Boolean [C, C], True where column <= row + diagonal (0: lower triangle with the diagonal)."""
    return torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=device).tril(diagonal)


def decay_matrix(g_cum: Tensor) -> Tensor:
    """[..., C] cumulative log decays -> [..., C, C] with exp(G_r - G_j) for j <= r, else 0.

    The difference is masked to -inf *before* the exponential: above the diagonal G_r - G_j is
    positive and can be large, so exp would overflow and poison the gradient with inf * 0.
    """
    diff = g_cum[..., :, None] - g_cum[..., None, :]  # [..., C, C]
    mask = causal_mask(g_cum.shape[-1], g_cum.device)
    return diff.masked_fill(~mask, float("-inf")).exp()


def solve_unit_lower(a: Tensor, rhs: Tensor) -> Tensor:
    """Solve (I + tril(a, -1)) X = rhs for X; a [..., C, C], rhs [..., C, D].

    Runs in at least float32: CPU has no bfloat16 triangular solve, and under autocast the
    matmuls that build `a` come out in bfloat16.
    """
    dtype = torch.promote_types(torch.promote_types(a.dtype, rhs.dtype), torch.float32)
    eye = torch.eye(a.shape[-1], dtype=dtype, device=a.device)
    lower = a.to(dtype).tril(-1) + eye
    return torch.linalg.solve_triangular(lower, rhs.to(dtype), upper=False, unitriangular=True)


def initial_state_or_zeros(q: Tensor, v: Tensor, initial_state: Tensor | None) -> Tensor:
    """S_0 [B, H, K, V] for chunked q [B, H, N, C, K], v [B, H, N, C, V]: the caller's state in the
    working dtype, or zeros."""
    if initial_state is None:
        return q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1])
    return initial_state.to(q.dtype)
