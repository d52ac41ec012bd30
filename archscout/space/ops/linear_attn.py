"""Causal linear attention, with an optional per-token decay: chunkwise form and references.

    S_t = exp(g_t) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale * q_t)

With g = 0 this is Katharopoulos et al. 2020, "Transformers are RNNs" (arXiv 2006.16236); with
`normalize` the output is divided by (scale * q_t)^T z_t + eps, z_t the matching decayed sum of keys,
which is only meaningful for a positive feature map such as elu(x) + 1 (apply it before calling).
A constant per-head g is RetNet's retention (see retention.py). Covers the forward pass (autograd
does the backward); no feature maps, no initial or returned state.
"""

from __future__ import annotations

import torch
from torch import Tensor

from archscout.space.ops.chunking import causal_mask, decay_matrix, from_chunks, to_chunks


def decay_linear_attn_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor | None = None,
    chunk_size: int = 32,
    scale: float | None = None,
    normalize: bool = False,
    eps: float = 1e-6,
) -> Tensor:
    """q, k [B, T, H, K], v [B, T, H, V], g [B, T, H] log decay or None -> o [B, T, H, V]."""
    seq_len, d_v = q.shape[1], v.shape[-1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if normalize:
        # a column of ones in v makes the same recurrence carry the normaliser z alongside S
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # [B, T, H, V + 1]
    q, k, v = (to_chunks(x, chunk_size) for x in (q * scale, k, v))  # [B, H, N, C, K|V]
    if g is None:
        decay = causal_mask(chunk_size, q.device).to(q.dtype)  # [C, C]
        q_decayed, k_decayed = q, k
        chunk_decay = q.new_ones(*q.shape[:3], 1, 1)  # [B, H, N, 1, 1]
    else:
        g_cum = to_chunks(g, chunk_size).cumsum(-1)  # [B, H, N, C]
        decay = decay_matrix(g_cum)  # [B, H, N, C, C]
        q_decayed = q * g_cum.exp()[..., None]
        k_decayed = k * (g_cum[..., -1:] - g_cum).exp()[..., None]
        chunk_decay = g_cum[..., -1].exp()[..., None, None]  # [B, H, N, 1, 1]
    intra = ((q @ k.mT) * decay) @ v  # [B, H, N, C, V]
    state = q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1])  # [B, H, K, V]
    out = []
    # unbind, not indexing: each indexed read would cost a full-size zero tensor in the backward
    chunks = (x.unbind(2) for x in (intra, q_decayed, k_decayed, v, chunk_decay))
    for intra_n, q_n, k_n, v_n, decay_n in zip(*chunks):
        out.append(intra_n + q_n @ state)
        state = state * decay_n + k_n.mT @ v_n
    o = from_chunks(torch.stack(out, dim=2), seq_len)  # [B, T, H, V (+1)]
    return o[..., :d_v] / (o[..., d_v:] + eps) if normalize else o


def linear_attn_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    chunk_size: int = 32,
    scale: float | None = None,
    normalize: bool = False,
    eps: float = 1e-6,
) -> Tensor:
    """Causal linear attention without decay; q, k [B, T, H, K], v [B, T, H, V] -> [B, T, H, V]."""
    return decay_linear_attn_chunkwise(q, k, v, None, chunk_size, scale, normalize, eps)


def decay_linear_attn_naive(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor | None = None,
    scale: float | None = None,
    normalize: bool = False,
    eps: float = 1e-6,
) -> Tensor:
    """Token-by-token reference; same shapes and semantics as `decay_linear_attn_chunkwise`."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, t, h, d_k = q.shape
    state = q.new_zeros(b, h, d_k, v.shape[-1])  # [B, H, K, V]
    z = q.new_zeros(b, h, d_k)  # [B, H, K] running key sum for the normaliser
    out = []
    for i in range(t):
        if g is not None:
            state = state * g[:, i, :, None, None].exp()
            z = z * g[:, i, :, None].exp()
        state = state + k[:, i, :, :, None] * v[:, i, :, None, :]
        z = z + k[:, i]
        q_i = q[:, i] * scale  # [B, H, K]
        o_i = torch.einsum("bhk,bhkv->bhv", q_i, state)
        if normalize:
            o_i = o_i / ((q_i * z).sum(-1, keepdim=True) + eps)
        out.append(o_i)
    return torch.stack(out, dim=1)


def linear_attn_naive(
    q: Tensor, k: Tensor, v: Tensor, scale: float | None = None, normalize: bool = False, eps: float = 1e-6
) -> Tensor:
    """Token-by-token reference for `linear_attn_chunkwise`."""
    return decay_linear_attn_naive(q, k, v, None, scale, normalize, eps)
