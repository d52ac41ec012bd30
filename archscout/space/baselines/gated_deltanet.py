"""Gated DeltaNet: the delta rule with a data-dependent, Mamba-2 style decay of the state.

Yang, Kautz & Hatamizadeh 2024, "Gated Delta Networks: Improving Mamba2 with Delta Rule"
(arXiv 2412.06464), laid out like flash-linear-attention's `GatedDeltaNet` layer but with head
dim d_model / num_heads and no value expansion: DeltaNet's path (q/k/v projections, short conv +
SiLU, L2-normalised q and k, sigmoid beta, gated per-head RMSNorm, output projection) plus the log
decay g = -exp(A_log) * softplus(Linear(x) + dt_bias), with A log-uniform in [1, 16] and dt_bias the
inverse softplus of a dt log-uniform in [0.001, 0.1] (Mamba-2's initialisation).

Not covered: padding masks (`attention_mask` is accepted and ignored) and incremental decoding
(`past_key_values` is passed through untouched).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.layers import conv_weight, init_linear, resolve_width
from archscout.space.ops import gated_delta_rule_chunkwise, short_conv


def log_uniform(n: int, low: float, high: float) -> torch.Tensor:
    return torch.exp(torch.empty(n).uniform_(math.log(low), math.log(high)))


def decay_params(num_heads: int) -> tuple[nn.Parameter, nn.Parameter]:
    """(A_log, dt_bias) [H] each, so that the initial decay rates span slow to fast heads."""
    a_log = torch.log(log_uniform(num_heads, 1.0, 16.0))
    dt = log_uniform(num_heads, 1e-3, 1e-1)
    dt_bias = dt + torch.log(-torch.expm1(-dt))  # inverse softplus: softplus(dt_bias) = dt
    return nn.Parameter(a_log), nn.Parameter(dt_bias)


class GatedDeltaNet(nn.Module):
    def __init__(
        self,
        d_model: int | None = None,
        hidden_size: int | None = None,
        num_heads: int = 4,
        layer_idx: int | None = None,
        chunk_size: int = 32,
        conv_size: int = 4,
        **kwargs,
    ):
        super().__init__()
        self.d_model = resolve_width(d_model, hidden_size, num_heads)
        self.num_heads = num_heads
        self.head_dim = self.d_model // num_heads
        self.layer_idx = layer_idx
        self.chunk_size = chunk_size
        self.qkv_proj = nn.Linear(self.d_model, 3 * self.d_model, bias=False)
        self.qkv_conv = conv_weight(3 * self.d_model, conv_size)  # [3D, W]
        self.beta_proj = nn.Linear(self.d_model, num_heads, bias=False)
        self.decay_proj = nn.Linear(self.d_model, num_heads, bias=False)
        self.A_log, self.dt_bias = decay_params(num_heads)
        # as in fla: decay rates are not shrunk towards zero by weight decay
        self.A_log._no_weight_decay = True
        self.dt_bias._no_weight_decay = True
        self.gate_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.qkv_proj, self.beta_proj, self.decay_proj, self.gate_proj, self.o_proj):
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
        heads = (b, t, self.num_heads, self.head_dim)
        qkv = F.silu(short_conv(self.qkv_proj(hidden_states), self.qkv_conv))  # [B, T, 3D]
        q, k, v = qkv.view(b, t, 3, *heads[2:]).unbind(2)  # each [B, T, H, Dh]
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = self.beta_proj(hidden_states).sigmoid()  # [B, T, H]
        g = -self.A_log.exp() * F.softplus(self.decay_proj(hidden_states) + self.dt_bias)  # [B, T, H]
        o = gated_delta_rule_chunkwise(q, k, v, beta, g, chunk_size=self.chunk_size)  # [B, T, H, Dh]
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(heads))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
