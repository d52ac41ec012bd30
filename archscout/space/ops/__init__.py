"""Pure tensor ops for token mixers; each fast (chunkwise) version sits beside a naive reference.

Shapes follow flash-linear-attention: q, k [B, T, H, K], v [B, T, H, V], beta and g [B, T, H].
"""

from archscout.space.ops.conv import short_conv
from archscout.space.ops.delta import delta_rule_chunkwise
from archscout.space.ops.gated_delta import gated_delta_rule_chunkwise
from archscout.space.ops.linear_attn import decay_linear_attn_chunkwise, gla_chunkwise, linear_attn_chunkwise
from archscout.space.ops.retention import retention_chunkwise

__all__ = [
    "decay_linear_attn_chunkwise",
    "delta_rule_chunkwise",
    "gated_delta_rule_chunkwise",
    "gla_chunkwise",
    "linear_attn_chunkwise",
    "retention_chunkwise",
    "short_conv",
]
