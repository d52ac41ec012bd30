"""DeltaProduct with two Householder steps per token: the delta rule applied twice per token.

Siems, Carstensen, Zela, Hutter, Pontil & Grazzi 2025, "DeltaProduct: Improving State-Tracking in
Linear RNNs via Householder Products" (arXiv 2502.10297): each token produces n_h = 2 keys, values
and betas, and the state takes n_h delta-rule steps, so its transition is a product of two
generalised Householder matrices. Implemented, as the paper describes, by interleaving the n_h
(key, value, beta) triples into a sequence of length n_h * T, running DeltaNet's chunkwise delta rule
over it and reading the output after each token's last step. Otherwise DeltaNet's layer: short conv
+ SiLU, L2-normalised q and k, sigmoid betas, gated per-head RMSNorm, output projection.

Not covered: padding masks and incremental decoding (arguments accepted and ignored).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.ops import delta_rule_chunkwise, short_conv

STEPS = 2  # Householder factors per token


def resolve_width(d_model: int | None, hidden_size: int | None, num_heads: int) -> int:
    width = d_model if d_model is not None else hidden_size
    if width is None:
        raise ValueError("pass d_model (or hidden_size)")
    if width % num_heads:
        raise ValueError(f"d_model {width} is not divisible by num_heads {num_heads}")
    return width


class DeltaProduct(nn.Module):
    def __init__(self, d_model: int | None = None, hidden_size: int | None = None, num_heads: int = 4,
                 layer_idx: int | None = None, chunk_size: int = 32, conv_size: int = 4, **kwargs):
        super().__init__()
        self.d_model = resolve_width(d_model, hidden_size, num_heads)
        self.num_heads, self.head_dim = num_heads, self.d_model // num_heads
        self.layer_idx, self.chunk_size = layer_idx, chunk_size
        # one query, STEPS keys and STEPS values per token
        self.in_proj = nn.Linear(self.d_model, (1 + 2 * STEPS) * self.d_model, bias=False)
        bound = 1 / math.sqrt(conv_size)
        self.in_conv = nn.Parameter(torch.empty((1 + 2 * STEPS) * self.d_model, conv_size).uniform_(-bound, bound))
        self.beta_proj = nn.Linear(self.d_model, STEPS * num_heads, bias=False)
        self.gate_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.in_proj, self.beta_proj, self.gate_proj, self.o_proj):
            nn.init.normal_(layer.weight, std=0.02)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        b, t, _ = hidden_states.shape
        h, dh = self.num_heads, self.head_dim
        x = F.silu(short_conv(self.in_proj(hidden_states), self.in_conv))
        q, k, v = x.view(b, t, 1 + 2 * STEPS, h, dh).split([1, STEPS, STEPS], dim=2)  # [B, T, n, H, Dh]
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = self.beta_proj(hidden_states).sigmoid().view(b, t, STEPS, h)
        # token t's steps sit at positions STEPS*t .. STEPS*t + STEPS - 1; only the last one has a query
        q_steps = torch.cat([q.new_zeros(b, t, STEPS - 1, h, dh), q], dim=2)
        flat = lambda z: z.reshape(b, t * STEPS, *z.shape[3:])  # noqa: E731
        o = delta_rule_chunkwise(flat(q_steps), flat(k), flat(v), flat(beta), chunk_size=self.chunk_size * STEPS)
        o = o.view(b, t, STEPS, h, dh)[:, :, -1]  # [B, T, H, Dh]
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(b, t, h, dh))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
