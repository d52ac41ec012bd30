"""Causal linear attention with the elu + 1 feature map and a normaliser.

Katharopoulos, Vyas, Pappas & Fleuret 2020, "Transformers are RNNs: Fast Autoregressive
Transformers with Linear Attention" (arXiv 2006.16236): phi(x) = elu(x) + 1 on per-head q and k,
o_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps) with S_t = sum_{s <= t} phi(k_s) v_s^T and
z_t = sum_{s <= t} phi(k_s), then an output projection. The plain linear-attention reference: no
decay, no short conv, no output norm or gate.

Not covered: padding masks (`attention_mask` is accepted and ignored) and incremental decoding
(`past_key_values` is passed through untouched).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.layers import init_linear, resolve_width
from archscout.space.ops import linear_attn_chunkwise


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """elu(x) + 1: positive, so the normaliser never crosses zero."""
    return F.elu(x) + 1


class LinearAttention(nn.Module):
    def __init__(
        self,
        d_model: int | None = None,
        hidden_size: int | None = None,
        num_heads: int = 4,
        layer_idx: int | None = None,
        chunk_size: int = 32,
        **kwargs,
    ):
        super().__init__()
        self.d_model = resolve_width(d_model, hidden_size, num_heads)
        self.num_heads = num_heads
        self.head_dim = self.d_model // num_heads
        self.layer_idx = layer_idx
        self.chunk_size = chunk_size
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
        q, k, v = qkv.unbind(2)  # each [B, T, H, Dh]
        o = linear_attn_chunkwise(
            feature_map(q), feature_map(k), v, chunk_size=self.chunk_size, normalize=True
        )  # [B, T, H, Dh]
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
