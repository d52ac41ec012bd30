"""DeltaNet: linear attention whose state is updated by the delta rule.

Yang, Wang, Shen, Panda & Kim 2024, "Parallelizing Linear Transformers with the Delta Rule over
Sequence Length" (arXiv 2406.06484), laid out like flash-linear-attention's `DeltaNet` layer:
q/k/v projections -> short causal depthwise conv (kernel 4) + SiLU -> L2-normalised q and k per
head -> beta = sigmoid(Linear(x)) -> chunkwise delta rule -> per-head RMSNorm times a SiLU output
gate -> output projection. This is the seed candidate the search starts from.

Not covered: padding masks (`attention_mask` is accepted and ignored: the evaluator feeds unpadded
sequences) and incremental decoding (`past_key_values` is passed through untouched).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.layers import conv_weight, init_linear, resolve_width
from archscout.space.ops import delta_rule_chunkwise, short_conv


class DeltaNet(nn.Module):
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
        self.gate_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.qkv_proj, self.beta_proj, self.gate_proj, self.o_proj):
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
        # unit keys keep the delta rule's (I - beta k k^T) a contraction, so the state cannot blow up
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = self.beta_proj(hidden_states).sigmoid()  # [B, T, H]
        o = delta_rule_chunkwise(q, k, v, beta, chunk_size=self.chunk_size)  # [B, T, H, Dh]
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(heads))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
