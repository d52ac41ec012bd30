"""fla.ops.simple_gla: linear attention with a scalar log decay per head and token."""

from __future__ import annotations

from torch import Tensor

from archscout.compat.fla.ops._varlen import CHUNK_SIZE, run
from archscout.space.ops.linear_attn import decay_linear_attn_chunkwise


def chunk_simple_gla(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor | None = None,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: Tensor | None = None,
    head_first: bool = False,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], g [B, T, H] or None -> (o, S [N, H, K, V])."""

    def one(q, k, v, g, initial_state):
        return decay_linear_attn_chunkwise(q, k, v, g, CHUNK_SIZE, scale, initial_state=initial_state, return_state=True)

    return run(one, [q, k, v, g], initial_state, output_final_state, cu_seqlens, head_first)


fused_recurrent_simple_gla = chunk_simple_gla

__all__ = ["chunk_simple_gla", "fused_recurrent_simple_gla"]
