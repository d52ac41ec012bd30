"""Gated Linear Attention (GLA): linear attention with a data-dependent diagonal (per-key-channel) decay.

Yang, Wang, Shen, Panda & Kim 2024, "Gated Linear Attention Transformers with Hardware-Efficient
Training" (ICML 2024, arXiv 2312.06635): S_t = diag(alpha_t) S_{t-1} + k_t v_t^T with
alpha_t = sigmoid(W2 W1 x_t) ** (1 / tau), tau = 16, a low-rank (rank 16) gate projection, then a
per-head RMSNorm times a SiLU output gate and an output projection, as in the paper's layer.

The per-key-channel decay runs through `archscout.space.ops.gla_chunkwise`.

Not covered: padding masks and incremental decoding (arguments accepted and ignored).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from archscout.space.ops import gla_chunkwise

GATE_RANK = 16
GATE_TAU = 16.0


def resolve_width(d_model: int | None, hidden_size: int | None, num_heads: int) -> int:
    width = d_model if d_model is not None else hidden_size
    if width is None:
        raise ValueError("pass d_model (or hidden_size)")
    if width % num_heads:
        raise ValueError(f"d_model {width} is not divisible by num_heads {num_heads}")
    return width


class GatedLinearAttention(nn.Module):
    def __init__(self, d_model: int | None = None, hidden_size: int | None = None, num_heads: int = 4,
                 layer_idx: int | None = None, chunk_size: int = 32, **kwargs):
        super().__init__()
        self.d_model = resolve_width(d_model, hidden_size, num_heads)
        self.num_heads, self.head_dim = num_heads, self.d_model // num_heads
        self.layer_idx, self.chunk_size = layer_idx, chunk_size
        self.qkv_proj = nn.Linear(self.d_model, 3 * self.d_model, bias=False)
        self.gk_down = nn.Linear(self.d_model, GATE_RANK, bias=False)
        self.gk_up = nn.Linear(GATE_RANK, self.d_model, bias=True)
        self.gate_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.qkv_proj, self.gk_down, self.gk_up, self.gate_proj, self.o_proj):
            nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(self.gk_up.bias)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        b, t, _ = hidden_states.shape
        heads = (b, t, self.num_heads, self.head_dim)
        q, k, v = self.qkv_proj(hidden_states).view(b, t, 3, *heads[2:]).unbind(2)
        g = F.logsigmoid(self.gk_up(self.gk_down(hidden_states))) / GATE_TAU  # log alpha [B, T, D]
        o = gla_chunkwise(q, k, v, g.view(heads), chunk_size=self.chunk_size)
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(heads))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
