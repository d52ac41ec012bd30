"""DeltaNet ablation: no short convolution on q, k, v (the rest is DeltaNet unchanged).

Yang, Wang, Shen, Panda & Kim 2024, "Parallelizing Linear Transformers with the Delta Rule over
Sequence Length" (arXiv 2406.06484), laid out like flash-linear-attention's `DeltaNet` layer:
q/k/v projections -> short causal depthwise conv (kernel 4) + SiLU -> L2-normalised q and k per
head -> beta = sigmoid(Linear(x)) -> chunkwise delta rule -> per-head RMSNorm times a SiLU output
gate -> output projection, minus the short convolution: q, k, v are SiLU(projection) directly. The
paper ablates this component; this member checks whether the instrument can see the difference.

Not covered: padding masks (`attention_mask` is accepted and ignored: the evaluator feeds unpadded
sequences) and incremental decoding (`past_key_values` is passed through untouched).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archscout.space.ops import delta_rule_chunkwise


def resolve_width(d_model: int | None, hidden_size: int | None, num_heads: int) -> int:
    """The model width; `d_model` wins over `hidden_size`, and it must split into the heads."""
    width = d_model if d_model is not None else hidden_size
    if width is None:
        raise ValueError("pass d_model (or hidden_size)")
    if width % num_heads:
        raise ValueError(f"d_model {width} is not divisible by num_heads {num_heads}")
    return width


def init_linear(layer: nn.Linear, std: float = 0.02) -> None:
    nn.init.normal_(layer.weight, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class DeltaNetNoConv(nn.Module):
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
        qkv = F.silu(self.qkv_proj(hidden_states))  # [B, T, 3D]
        q, k, v = qkv.view(b, t, 3, *heads[2:]).unbind(2)  # each [B, T, H, Dh]
        # unit keys keep the delta rule's (I - beta k k^T) a contraction, so the state cannot blow up
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = self.beta_proj(hidden_states).sigmoid()  # [B, T, H]
        o = delta_rule_chunkwise(q, k, v, beta, chunk_size=self.chunk_size)  # [B, T, H, Dh]
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(heads))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values
