"""fla.ops.gated_delta_rule: chunk_gated_delta_rule and fused_recurrent_gated_delta_rule."""

from __future__ import annotations

from torch import Tensor

from archscout.compat.fla.ops._varlen import CHUNK_SIZE, l2, run
from archscout.space.ops.gated_delta import gated_delta_rule_chunkwise


def chunk_gated_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    beta: Tensor | None = None,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: Tensor | None = None,
    head_first: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], g (log decay) and beta [B, T, H] -> (o, S [N, H, K, V])."""
    if use_qk_l2norm_in_kernel:
        q, k = l2(q), l2(k)
    if beta is None:
        beta = g.new_ones(g.shape)

    def one(q, k, v, g, beta, initial_state):
        return gated_delta_rule_chunkwise(q, k, v, beta, g, CHUNK_SIZE, scale, initial_state, return_state=True)

    return run(one, [q, k, v, g, beta], initial_state, output_final_state, cu_seqlens, head_first)


fused_recurrent_gated_delta_rule = chunk_gated_delta_rule

__all__ = ["chunk_gated_delta_rule", "fused_recurrent_gated_delta_rule"]
