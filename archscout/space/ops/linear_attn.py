"""Causal linear attention, with an optional per-token decay: chunkwise form and references.

    S_t = exp(g_t) S_{t-1} + k_t v_t^T,    o_t = S_t^T (scale * q_t)

With g = 0 this is Katharopoulos et al. 2020, "Transformers are RNNs" (arXiv 2006.16236); with
`normalize` the output is divided by (scale * q_t)^T z_t + eps, z_t the matching decayed sum of keys,
which is only meaningful for a positive feature map such as elu(x) + 1 (apply it before calling).
A constant per-head g is RetNet's retention (see retention.py). `gla_chunkwise` is the same recurrence
with a decay per key channel, S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T (GLA, Yang et al. 2023,
arXiv 2312.06635). Covers the forward pass (autograd does the backward), an initial state and the
returned final state (not together with `normalize`); no feature maps, no variable-length packing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from archscout.space.ops.chunking import causal_mask, decay_matrix, from_chunks, initial_state_or_zeros, to_chunks


def decay_linear_attn_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor | None = None,
    chunk_size: int = 32,
    scale: float | None = None,
    normalize: bool = False,
    eps: float = 1e-6,
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """q, k [B, T, H, K], v [B, T, H, V], g [B, T, H] log decay or None -> o [B, T, H, V].

    `initial_state` [B, H, K, V] is S_0; with `return_state` the state after T is returned too.
    """
    if normalize and (initial_state is not None or return_state):
        raise NotImplementedError("a carried state with normalize=True (the normaliser is not part of S)")
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
    state = initial_state_or_zeros(q, v, initial_state)  # [B, H, K, V]
    out = []
    # unbind, not indexing: each indexed read would cost a full-size zero tensor in the backward
    chunks = (x.unbind(2) for x in (intra, q_decayed, k_decayed, v, chunk_decay))
    for intra_n, q_n, k_n, v_n, decay_n in zip(*chunks):
        out.append(intra_n + q_n @ state)
        state = state * decay_n + k_n.mT @ v_n
    o = from_chunks(torch.stack(out, dim=2), seq_len)  # [B, T, H, V (+1)]
    if normalize:
        return o[..., :d_v] / (o[..., d_v:] + eps)
    return (o, state) if return_state else o


def gla_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    chunk_size: int = 32,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """q, k, g [B, T, H, K] (g a log decay per key channel), v [B, T, H, V] -> o [B, T, H, V].

    Within a chunk the pairwise decay exp(G_r - G_j) differs per channel, so it is materialised as
    [C, C, K] with the upper triangle masked before the exponential (never an overflow).
    """
    seq_len = q.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    q, k, v, g = (to_chunks(x, chunk_size) for x in (q * scale, k, v, g))  # [B, H, N, C, K|V]
    g_cum = g.cumsum(-2)  # [B, H, N, C, K]
    diff = g_cum[..., :, None, :] - g_cum[..., None, :, :]  # [B, H, N, C, C, K]
    mask = causal_mask(chunk_size, q.device)[..., None]  # [C, C, 1]
    pair_decay = diff.masked_fill(~mask, float("-inf")).exp()
    scores = torch.einsum("...rk,...jk,...rjk->...rj", q, k, pair_decay)  # [B, H, N, C, C]
    intra = scores @ v  # [B, H, N, C, V]
    q_decayed = q * g_cum.exp()
    k_decayed = k * (g_cum[..., -1:, :] - g_cum).exp()
    chunk_decay = g_cum[..., -1, :].exp()[..., None]  # [B, H, N, K, 1]
    state = initial_state_or_zeros(q, v, initial_state)  # [B, H, K, V]
    out = []
    chunks = (x.unbind(2) for x in (intra, q_decayed, k_decayed, v, chunk_decay))
    for intra_n, q_n, k_n, v_n, decay_n in zip(*chunks):
        out.append(intra_n + q_n @ state)
        state = state * decay_n + k_n.mT @ v_n
    o = from_chunks(torch.stack(out, dim=2), seq_len)
    return (o, state) if return_state else o


def gla_naive(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Token-by-token reference for `gla_chunkwise`."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, t, h, d_k = q.shape
    state = q.new_zeros(b, h, d_k, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    out = []
    for i in range(t):
        state = state * g[:, i, :, :, None].exp() + k[:, i, :, :, None] * v[:, i, :, None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i] * scale, state))
    o = torch.stack(out, dim=1)
    return (o, state) if return_state else o


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
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Token-by-token reference; same shapes and semantics as `decay_linear_attn_chunkwise`."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, t, h, d_k = q.shape
    state = q.new_zeros(b, h, d_k, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
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
    o = torch.stack(out, dim=1)
    return (o, state) if return_state else o


def linear_attn_naive(
    q: Tensor, k: Tensor, v: Tensor, scale: float | None = None, normalize: bool = False, eps: float = 1e-6
) -> Tensor:
    """Token-by-token reference for `linear_attn_chunkwise`."""
    return decay_linear_attn_naive(q, k, v, None, scale, normalize, eps)
