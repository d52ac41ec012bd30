"""The gated delta rule (Gated DeltaNet): chunkwise form and a token-by-token reference.

Recurrence, state S [K, V] per head, alpha_t = exp(g_t) with g_t <= 0 a log decay, output read from
the updated state:

    S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,    o_t = S_t^T (scale * q_t)

From Yang, Kautz & Hatamizadeh 2024, "Gated Delta Networks: Improving Mamba2 with Delta Rule"
(arXiv 2412.06464). The chunkwise form is the delta rule's UT transform with every within-chunk
interaction j -> r weighted by exp(G_r - G_j), G the cumulative sum of g inside the chunk. Only
non-positive exponents are ever evaluated, so it is stable in float32. Covers the forward pass
(autograd does the backward), an initial state and the returned final state; no variable-length
packing (the compat layer splits packed sequences).
"""

from __future__ import annotations

import torch
from torch import Tensor

from archscout.space.ops.chunking import (
    decay_matrix,
    from_chunks,
    initial_state_or_zeros,
    solve_unit_lower,
    to_chunks,
)


def gated_ut_transform(
    k: Tensor, v: Tensor, beta: Tensor, g_cum: Tensor, decay: Tensor
) -> tuple[Tensor, Tensor]:
    """W, U of one chunk: k [..., C, K], v [..., C, V], beta, g_cum [..., C], decay [..., C, C].

    u = U - W S0 are the chunk's effective writes given the incoming state S0; the exp(G_r) on W's
    right-hand side is the decay the incoming state has suffered by position r.
    """
    a = beta[..., None] * (k @ k.mT) * decay  # [..., C, C]
    rhs = torch.cat([k * g_cum.exp()[..., None], v], dim=-1) * beta[..., None]  # [..., C, K + V]
    w, u = solve_unit_lower(a, rhs).split([k.shape[-1], v.shape[-1]], dim=-1)
    return w.to(k.dtype), u.to(v.dtype)


def gated_delta_rule_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor,
    chunk_size: int = 32,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """q, k [B, T, H, K], v [B, T, H, V], beta, g [B, T, H] -> o [B, T, H, V] (and S [B, H, K, V]).

    `initial_state` [B, H, K, V] is S_0; with `return_state` the state after position T is returned.

    `scale` multiplies q (default K ** -0.5). The padded tail has k = 0, beta = 0 and g = 0 (no
    decay), so it cannot change any real position's output.
    """
    seq_len = q.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    q, k, v = (to_chunks(x, chunk_size) for x in (q * scale, k, v))  # [B, H, N, C, K|V]
    beta, g = (to_chunks(x, chunk_size) for x in (beta, g))  # [B, H, N, C]
    g_cum = g.cumsum(-1)  # [B, H, N, C]
    decay = decay_matrix(g_cum)  # [B, H, N, C, C], zero above the diagonal
    w, u = gated_ut_transform(k, v, beta, g_cum, decay)
    qk = (q @ k.mT) * decay  # [B, H, N, C, C]
    q_decayed = q * g_cum.exp()[..., None]  # reads of the incoming state
    k_decayed = k * (g_cum[..., -1:] - g_cum).exp()[..., None]  # writes, decayed to the chunk end
    chunk_decay = g_cum[..., -1].exp()[..., None, None]  # [B, H, N, 1, 1]
    state = initial_state_or_zeros(q, v, initial_state)  # [B, H, K, V]
    out = []
    # unbind, not indexing: each indexed read would cost a full-size zero tensor in the backward
    chunks = (x.unbind(2) for x in (q_decayed, k_decayed, w, u, qk, chunk_decay))
    for q_n, k_n, w_n, u_n, qk_n, decay_n in zip(*chunks):
        u_n = u_n - w_n @ state  # [B, H, C, V]
        out.append(q_n @ state + qk_n @ u_n)
        state = state * decay_n + k_n.mT @ u_n
    o = from_chunks(torch.stack(out, dim=2), seq_len)
    return (o, state) if return_state else o


def gated_delta_rule_naive(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    g: Tensor,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Token-by-token reference; same shapes and semantics as `gated_delta_rule_chunkwise`."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, t, h, d_k = q.shape
    state = q.new_zeros(b, h, d_k, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    out = []
    for i in range(t):
        k_i = k[:, i]  # [B, H, K]
        state = state * g[:, i, :, None, None].exp()
        pred = torch.einsum("bhk,bhkv->bhv", k_i, state)
        delta = beta[:, i, :, None] * (v[:, i] - pred)  # [B, H, V]
        state = state + k_i[..., None] * delta[..., None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i] * scale, state))
    o = torch.stack(out, dim=1)
    return (o, state) if return_state else o
