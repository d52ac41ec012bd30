"""Multi-scale retention (RetNet): linear attention with a fixed decay per head.

Sun et al. 2023, "Retentive Network: A Successor to Transformer for Large Language Models"
(arXiv 2307.08621): q/k/v projections, o_t = sum_{s <= t} gamma_h^(t - s) (q_t . k_s) v_s with
q . k scaled by head_dim ** -0.5, a per-head norm (RMSNorm here, in place of the paper's GroupNorm)
times a swish gate, then an output projection. The decays follow the LM variant of the official
code: gamma_h = 1 - 2^-x with x spaced evenly in [5, 9], so any head count spans time scales of
about 32 to 512 tokens.

Not covered: the xPos rotation of q and k (the retention here has no relative-position phase), the
paper's doubled value width, padding masks (`attention_mask` is accepted and ignored) and
incremental decoding (`past_key_values` is passed through untouched).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.layers import init_linear, resolve_width
from archscout.space.ops import retention_chunkwise


def head_decays(num_heads: int) -> torch.Tensor:
    """gamma [H]: 1 - 2^-5 (fast, ~32 tokens) down to 1 - 2^-9 (slow, ~512 tokens)."""
    return 1 - 2.0 ** -torch.linspace(5.0, 9.0, num_heads)


class Retention(nn.Module):
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
        # a buffer, not a parameter: the decays are fixed by design, yet follow .to(dtype)
        self.register_buffer("gamma", head_decays(num_heads), persistent=False)
        self.qkv_proj = nn.Linear(self.d_model, 3 * self.d_model, bias=False)
        self.gate_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.qkv_proj, self.gate_proj, self.o_proj):
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
        q, k, v = self.qkv_proj(hidden_states).view(b, t, 3, *heads[2:]).unbind(2)  # [B, T, H, Dh]
        o = retention_chunkwise(q, k, v, self.gamma, chunk_size=self.chunk_size)  # scale Dh ** -0.5
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(heads))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
