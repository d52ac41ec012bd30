"""The delta rule (DeltaNet): chunkwise WY/UT-transform form and a token-by-token reference.

Recurrence, with state S [K, V] per head and the output read from the *updated* state (the
semantics of fla's `delta_rule_recurrence`):

    S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T,    o_t = S_t^T (scale * q_t)

The chunkwise form follows Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule
over Sequence Length" (arXiv 2406.06484). Within a chunk, T = (I + tril(diag(beta) K K^T, -1))^-1
diag(beta) gives W = T K and U = T V; across chunks u = U - W S, o = Q S + tril(Q K^T) u and
S <- S + K^T u. Covers the forward pass (autograd does the backward), an initial state and the
returned final state (for fla's `initial_state` / `output_final_state`); no variable-length packing
(the compat layer splits packed sequences). Keys are expected L2-normalised and beta in (0, 1) for stability.
"""

from __future__ import annotations

import torch
from torch import Tensor

from archscout.space.ops.chunking import (
    causal_mask,
    from_chunks,
    initial_state_or_zeros,
    solve_unit_lower,
    to_chunks,
)


def ut_transform(k: Tensor, v: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """W = T K and U = T V for one chunk; k [..., C, K], v [..., C, V], beta [..., C]."""
    a = beta[..., None] * (k @ k.mT)  # [..., C, C]; row r scaled by beta_r
    rhs = torch.cat([k, v], dim=-1) * beta[..., None]  # [..., C, K + V]
    w, u = solve_unit_lower(a, rhs).split([k.shape[-1], v.shape[-1]], dim=-1)
    return w.to(k.dtype), u.to(v.dtype)


def delta_rule_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    chunk_size: int = 32,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """q, k [B, T, H, K], v [B, T, H, V], beta [B, T, H] -> o [B, T, H, V] (and S [B, H, K, V]).

    `scale` multiplies q (default K ** -0.5, as in fla). T need not be a multiple of chunk_size:
    the tail is padded with k = 0, beta = 0, which leaves the state untouched, so the state after
    the last chunk is the state after position T. `initial_state` [B, H, K, V] is S_0.
    """
    seq_len = q.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    q, k, v = (to_chunks(x, chunk_size) for x in (q * scale, k, v))  # [B, H, N, C, K|V]
    beta = to_chunks(beta, chunk_size)  # [B, H, N, C]
    w, u = ut_transform(k, v, beta)  # [B, H, N, C, K], [B, H, N, C, V]
    qk = (q @ k.mT).masked_fill(~causal_mask(chunk_size, q.device), 0)  # [B, H, N, C, C]
    state = initial_state_or_zeros(q, v, initial_state)  # [B, H, K, V]
    out = []
    # unbind, not indexing: each indexed read would cost a full-size zero tensor in the backward
    for q_n, k_n, w_n, u_n, qk_n in zip(*(x.unbind(2) for x in (q, k, w, u, qk))):
        u_n = u_n - w_n @ state  # [B, H, C, V]
        out.append(q_n @ state + qk_n @ u_n)
        state = state + k_n.mT @ u_n
    o = from_chunks(torch.stack(out, dim=2), seq_len)
    return (o, state) if return_state else o


def delta_rule_naive(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Token-by-token reference; same shapes and semantics as `delta_rule_chunkwise`."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, t, h, d_k = q.shape
    state = q.new_zeros(b, h, d_k, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    out = []
    for i in range(t):
        k_i = k[:, i]  # [B, H, K]
        pred = torch.einsum("bhk,bhkv->bhv", k_i, state)
        delta = beta[:, i, :, None] * (v[:, i] - pred)  # [B, H, V]
        state = state + k_i[..., None] * delta[..., None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, i] * scale, state))
    o = torch.stack(out, dim=1)
    return (o, state) if return_state else o
