"""Linear attention with a data-dependent diagonal decay (GLA, HGRN-2): chunkwise form and reference.

    S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale * q_t)

with g_t [K] a per-key-channel log decay (<= 0). Yang et al. 2024, "Gated Linear Attention
Transformers with Hardware-Efficient Training" (arXiv 2312.06635) give the chunkwise form. Within a
chunk the decay is an explicit [C, C, K] tensor exp(G_r - G_j), masked to -inf above the diagonal
*before* the exponential so that nothing overflows (GPUs use secondary chunking for the same job;
at CPU lengths the C x memory is affordable). Forward only (autograd does the backward); no initial
or returned state.
"""

from __future__ import annotations

import torch
from torch import Tensor

from archscout.space.ops.chunking import causal_mask, from_chunks, to_chunks


def gla_chunkwise(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk_size: int = 32, scale: float | None = None) -> Tensor:
    """q, k, g [B, T, H, K] (g: log decay <= 0), v [B, T, H, V] -> o [B, T, H, V]."""
    seq_len = q.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    q, k, v, g = (to_chunks(x, chunk_size) for x in (q * scale, k, v, g))  # [B, H, N, C, .]
    g_cum = g.cumsum(-2)  # [B, H, N, C, K]
    mask = causal_mask(chunk_size, q.device)[..., None]  # [C, C, 1]
    decay = (g_cum[..., :, None, :] - g_cum[..., None, :, :]).masked_fill(~mask, float("-inf")).exp()
    intra = torch.einsum("...rk,...jk,...rjk->...rj", q, k, decay) @ v  # [B, H, N, C, V]
    q_decayed = q * g_cum.exp()
    k_decayed = k * (g_cum[..., -1:, :] - g_cum).exp()
    chunk_decay = g_cum[..., -1, :].exp()[..., None]  # [B, H, N, K, 1]
    state = q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1])  # [B, H, K, V]
    out = []
    for intra_n, q_n, k_n, v_n, d_n in zip(*(x.unbind(2) for x in (intra, q_decayed, k_decayed, v, chunk_decay))):
        out.append(intra_n + q_n @ state)
        state = state * d_n + k_n.mT @ v_n
    return from_chunks(torch.stack(out, dim=2), seq_len)


def gla_naive(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None) -> Tensor:
    """Token-by-token reference for `gla_chunkwise`."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, t, h, d_k = q.shape
    state = q.new_zeros(b, h, d_k, v.shape[-1])
    out = []
    for i in range(t):
        state = state * g[:, i, :, :, None].exp() + k[:, i, :, :, None] * v[:, i, :, None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i] * scale, state))
    return torch.stack(out, dim=1)
