"""Causal multi-head softmax attention: the quadratic reference every linear mixer is compared with.

Vaswani et al. 2017, "Attention Is All You Need" (arXiv 1706.03762), with rotary position
embeddings on q and k (Su et al. 2021, "RoFormer", arXiv 2104.09864) because, unlike the
recurrent mixers, attention is otherwise blind to token order beyond what the causal mask implies.
Computed by F.scaled_dot_product_attention(is_causal=True); cost and memory grow as T^2.

Not covered: padding masks (`attention_mask` is accepted and ignored), a KV cache for incremental
decoding (`past_key_values` is passed through untouched) and returning attention weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.layers import init_linear, resolve_width


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs (i, i + half) of x [B, H, T, Dh] by position-dependent angles."""
    half = x.shape[-1] // 2
    dtype = torch.promote_types(x.dtype, torch.float32)  # angles of long sequences need fp32
    freqs = base ** -(torch.arange(half, dtype=dtype, device=x.device) / half)  # [half]
    angles = torch.arange(x.shape[-2], dtype=dtype, device=x.device)[:, None] * freqs  # [T, half]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]  # rest: odd Dh
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


class SoftmaxAttention(nn.Module):
    def __init__(
        self,
        d_model: int | None = None,
        hidden_size: int | None = None,
        num_heads: int = 4,
        layer_idx: int | None = None,
        **kwargs,
    ):
        super().__init__()
        self.d_model = resolve_width(d_model, hidden_size, num_heads)
        self.num_heads = num_heads
        self.head_dim = self.d_model // num_heads
        self.layer_idx = layer_idx
        self.qkv_proj = nn.Linear(self.d_model, 3 * self.d_model, bias=False)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.qkv_proj, self.o_proj):
            init_linear(layer)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values=None,
        use_cache: bool = False,
        output_attentions: bool = False,
        **kwargs,
    ):
        b, t, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(b, t, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, T, Dh]
        o = F.scaled_dot_product_attention(rotary(q), rotary(k), v, is_causal=True)  # [B, H, T, Dh]
        return self.o_proj(o.transpose(1, 2).reshape(b, t, self.d_model)), None, past_key_values
