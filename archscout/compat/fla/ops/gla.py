"""fla.ops.gla: gated linear attention with a log decay per key channel (chunk / fused_recurrent)."""

from __future__ import annotations

from torch import Tensor

from archscout.compat.fla.ops._varlen import CHUNK_SIZE, run
from archscout.space.ops.linear_attn import decay_linear_attn_chunkwise, gla_chunkwise


def chunk_gla(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: Tensor | None = None,
    head_first: bool = False,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """q, k, g [B, T, H, K], v [B, T, H, V] -> (o [B, T, H, V], S [N, H, K, V])."""

    def one(q, k, v, g, initial_state):
        return gla_chunkwise(q, k, v, g, CHUNK_SIZE, scale, initial_state, return_state=True)

    return run(one, [q, k, v, g], initial_state, output_final_state, cu_seqlens, head_first)


def fused_recurrent_gla(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gk: Tensor | None = None,
    gv: Tensor | None = None,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    reverse: bool = False,
    cu_seqlens: Tensor | None = None,
    head_first: bool = False,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """As `chunk_gla` with the decay named gk; a value-side decay gv and `reverse` are not covered."""
    if gv is not None or reverse:
        raise NotImplementedError("archscout's fla compat covers fused_recurrent_gla with gk only, forward in time")
    if gk is None:
        def one(q, k, v, initial_state):
            return decay_linear_attn_chunkwise(q, k, v, None, CHUNK_SIZE, scale, initial_state=initial_state, return_state=True)

        return run(one, [q, k, v], initial_state, output_final_state, cu_seqlens, head_first)
    return chunk_gla(q, k, v, gk, scale, initial_state, output_final_state, cu_seqlens, head_first)


fused_chunk_gla = chunk_gla

__all__ = ["chunk_gla", "fused_chunk_gla", "fused_recurrent_gla"]
