"""Mamba-2-style mixer: linear attention with a data-dependent *scalar* (per-head) decay.

Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms Through
Structured State Space Duality" (ICML 2024, arXiv 2405.21060). The SSD recurrence
S_t = exp(dt_t * A) S_{t-1} + dt_t k_t v_t^T (B = k, C = q, x = v in the paper's notation) with
dt_t = softplus(Linear(x_t) + dt_bias), A = -exp(A_log), A log-uniform in [1, 16] and dt in
[0.001, 0.1] at initialisation, a short causal convolution + SiLU on q/k/v, a D skip connection,
and a gated RMSNorm before the output projection. Simplifications: q/k/v come from one projection
per head (no shared B/C groups), no value expansion.

Not covered: padding masks and incremental decoding (arguments accepted and ignored).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.ops import decay_linear_attn_chunkwise, short_conv


def resolve_width(d_model: int | None, hidden_size: int | None, num_heads: int) -> int:
    width = d_model if d_model is not None else hidden_size
    if width is None:
        raise ValueError("pass d_model (or hidden_size)")
    if width % num_heads:
        raise ValueError(f"d_model {width} is not divisible by num_heads {num_heads}")
    return width


def log_uniform(n: int, low: float, high: float) -> torch.Tensor:
    return torch.exp(torch.empty(n).uniform_(math.log(low), math.log(high)))


class Mamba2Scalar(nn.Module):
    def __init__(self, d_model: int | None = None, hidden_size: int | None = None, num_heads: int = 4,
                 layer_idx: int | None = None, chunk_size: int = 32, conv_size: int = 4, **kwargs):
        super().__init__()
        self.d_model = resolve_width(d_model, hidden_size, num_heads)
        self.num_heads, self.head_dim = num_heads, self.d_model // num_heads
        self.layer_idx, self.chunk_size = layer_idx, chunk_size
        self.qkv_proj = nn.Linear(self.d_model, 3 * self.d_model, bias=False)
        bound = 1 / math.sqrt(conv_size)
        self.qkv_conv = nn.Parameter(torch.empty(3 * self.d_model, conv_size).uniform_(-bound, bound))
        self.dt_proj = nn.Linear(self.d_model, num_heads, bias=False)
        self.A_log = nn.Parameter(torch.log(log_uniform(num_heads, 1.0, 16.0)))
        dt = log_uniform(num_heads, 1e-3, 1e-1)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        self.D = nn.Parameter(torch.ones(num_heads))
        self.gate_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.qkv_proj, self.dt_proj, self.gate_proj, self.o_proj):
            nn.init.normal_(layer.weight, std=0.02)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        b, t, _ = hidden_states.shape
        heads = (b, t, self.num_heads, self.head_dim)
        qkv = F.silu(short_conv(self.qkv_proj(hidden_states), self.qkv_conv))
        q, k, v = qkv.view(b, t, 3, *heads[2:]).unbind(2)  # each [B, T, H, Dh]
        dt = F.softplus(self.dt_proj(hidden_states) + self.dt_bias)  # [B, T, H]
        g = -self.A_log.exp() * dt  # log decay, one scalar per head and token
        o = decay_linear_attn_chunkwise(q, k * dt[..., None], v, g, chunk_size=self.chunk_size)
        o = o + self.D[:, None] * v
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(heads))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
