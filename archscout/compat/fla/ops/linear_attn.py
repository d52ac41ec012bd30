"""fla.ops.linear_attn: causal linear attention (chunk / fused_chunk / fused_recurrent)."""

from __future__ import annotations

from torch import Tensor

from archscout.compat.fla.ops._varlen import CHUNK_SIZE, run
from archscout.space.ops.linear_attn import decay_linear_attn_chunkwise


def chunk_linear_attn(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    normalize: bool = False,
    cu_seqlens: Tensor | None = None,
    head_first: bool = False,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V] -> (o [B, T, H, V], S [N, H, K, V]).

    `normalize` divides by (scale q_t) . sum_{s<=t} k_s as fla does; not with a carried state.
    """

    def one(q, k, v, initial_state):
        if normalize:
            o = decay_linear_attn_chunkwise(q, k, v, None, CHUNK_SIZE, scale, normalize=True, eps=1e-10)
            if initial_state is not None or output_final_state:
                raise NotImplementedError("normalize=True with a carried state")
            return o, o.new_zeros(0)
        return decay_linear_attn_chunkwise(q, k, v, None, CHUNK_SIZE, scale, initial_state=initial_state, return_state=True)

    return run(one, [q, k, v], initial_state, output_final_state, cu_seqlens, head_first)


fused_chunk_linear_attn = chunk_linear_attn
fused_recurrent_linear_attn = chunk_linear_attn

__all__ = ["chunk_linear_attn", "fused_chunk_linear_attn", "fused_recurrent_linear_attn"]
