"""Retention (RetNet): causal linear attention with a fixed per-head decay gamma.

    o_t = sum_{s <= t} gamma^(t - s) ((scale * q_t) . k_s) v_s

From Sun et al. 2023, "Retentive Network: A Successor to Transformer for Large Language Models"
(arXiv 2307.08621). Implemented as decayed linear attention with the constant log decay log(gamma),
so the chunkwise form and its stability come from linear_attn.py. No xPos rotation, no group norm:
those belong to the layer, not the op.
"""

from __future__ import annotations

from torch import Tensor

from archscout.space.ops.linear_attn import decay_linear_attn_chunkwise, decay_linear_attn_naive


def _log_decay(q: Tensor, gamma: Tensor) -> Tensor:
    """gamma [H] in (0, 1) -> log decay broadcast to [B, T, H]."""
    return gamma.to(q.dtype).log().expand(*q.shape[:3])


def retention_chunkwise(
    q: Tensor, k: Tensor, v: Tensor, gamma: Tensor, chunk_size: int = 32, scale: float | None = None
) -> Tensor:
    """q, k [B, T, H, K], v [B, T, H, V], gamma [H] -> o [B, T, H, V]; scale defaults to K ** -0.5."""
    return decay_linear_attn_chunkwise(q, k, v, _log_decay(q, gamma), chunk_size, scale)


def retention_naive(q: Tensor, k: Tensor, v: Tensor, gamma: Tensor, scale: float | None = None) -> Tensor:
    """Token-by-token reference for `retention_chunkwise`."""
    return decay_linear_attn_naive(q, k, v, _log_decay(q, gamma), scale)
