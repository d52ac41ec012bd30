"""fla.ops.retention: RetNet retention with fla's fixed per-head decays gamma_h = 1 - 2^(-5 - h)."""

from __future__ import annotations

import torch
from torch import Tensor

from archscout.compat.fla.ops._varlen import CHUNK_SIZE, run
from archscout.space.ops.linear_attn import decay_linear_attn_chunkwise


def chunk_retention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: Tensor | None = None,
    head_first: bool = False,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V] -> (o [B, T, H, V], S [N, H, K, V])."""

    def one(q, k, v, initial_state):
        heads = q.shape[2]
        gamma = 1 - 2.0 ** (-5.0 - torch.arange(heads, dtype=torch.float64, device=q.device))
        g = gamma.log().to(q.dtype).expand(*q.shape[:3])  # [B, T, H]
        return decay_linear_attn_chunkwise(q, k, v, g, CHUNK_SIZE, scale, initial_state=initial_state, return_state=True)

    return run(one, [q, k, v], initial_state, output_final_state, cu_seqlens, head_first)


fused_recurrent_retention = chunk_retention
fused_chunk_retention = chunk_retention
parallel_retention = chunk_retention

__all__ = ["chunk_retention", "fused_chunk_retention", "fused_recurrent_retention", "parallel_retention"]
