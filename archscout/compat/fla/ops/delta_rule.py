"""fla.ops.delta_rule: chunk_delta_rule and fused_recurrent_delta_rule (both chunkwise here)."""

from __future__ import annotations

from torch import Tensor

from archscout.compat.fla.ops._varlen import CHUNK_SIZE, l2, run
from archscout.space.ops.delta import delta_rule_chunkwise


def chunk_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    beta: Tensor | None = None,
    scale: float | None = None,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: Tensor | None = None,
    head_first: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    **kwargs,
) -> tuple[Tensor, Tensor | None]:
    """q, k [B, T, H, K], v [B, T, H, V], beta [B, T, H] (default 1) -> (o [B, T, H, V], S [N, H, K, V])."""
    if use_qk_l2norm_in_kernel:
        q, k = l2(q), l2(k)
    if beta is None:
        beta = q.new_ones(q.shape[:3] if not head_first else (q.shape[0], q.shape[1], q.shape[2]))

    def one(q, k, v, beta, initial_state):
        return delta_rule_chunkwise(q, k, v, beta, CHUNK_SIZE, scale, initial_state, return_state=True)

    return run(one, [q, k, v, beta], initial_state, output_final_state, cu_seqlens, head_first)


fused_recurrent_delta_rule = chunk_delta_rule
fused_chunk_delta_rule = chunk_delta_rule

__all__ = ["chunk_delta_rule", "fused_chunk_delta_rule", "fused_recurrent_delta_rule"]
