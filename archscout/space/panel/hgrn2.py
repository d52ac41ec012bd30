"""HGRN-2: a gated linear RNN whose state is expanded by an outer product, with forget gate f and
input key 1 - f tied.

Qin, Yang, Sun, Shen, Li, Sun & Zhong 2024, "HGRN2: Gated Linear RNNs with State Expansion"
(COLM 2024, arXiv 2404.07904): S_t = diag(f_t) S_{t-1} + (1 - f_t) i_t^T, o_t = S_t^T q_t, with
f_t = lb + (1 - lb) sigmoid(W_f x_t), q = SiLU(W_q x_t), i_t = W_i x_t, then a normalised, gated
output projection. The paper's lower bound lb grows with depth through a learned cumulative
softmax; here it is a fixed schedule in layer_idx (0 for the first layer, then 0.5), a
simplification. The diagonal decay runs through `archscout.space.ops.gla_chunkwise`.

Not covered: padding masks and incremental decoding (arguments accepted and ignored).
"""

from __future__ import annotations


import torch.nn.functional as F
from torch import nn

from archscout.space.ops import gla_chunkwise


def resolve_width(d_model: int | None, hidden_size: int | None, num_heads: int) -> int:
    width = d_model if d_model is not None else hidden_size
    if width is None:
        raise ValueError("pass d_model (or hidden_size)")
    if width % num_heads:
        raise ValueError(f"d_model {width} is not divisible by num_heads {num_heads}")
    return width


class HGRN2(nn.Module):
    def __init__(self, d_model: int | None = None, hidden_size: int | None = None, num_heads: int = 4,
                 layer_idx: int | None = None, chunk_size: int = 32, **kwargs):
        super().__init__()
        self.d_model = resolve_width(d_model, hidden_size, num_heads)
        self.num_heads, self.head_dim = num_heads, self.d_model // num_heads
        self.layer_idx, self.chunk_size = layer_idx, chunk_size
        self.lower_bound = 0.0 if not layer_idx else 0.5
        self.qfi_proj = nn.Linear(self.d_model, 3 * self.d_model, bias=False)
        self.gate_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(self.d_model, self.d_model, bias=False)
        for layer in (self.qfi_proj, self.gate_proj, self.o_proj):
            nn.init.normal_(layer.weight, std=0.02)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        b, t, _ = hidden_states.shape
        heads = (b, t, self.num_heads, self.head_dim)
        q, f, i = self.qfi_proj(hidden_states).view(b, t, 3, *heads[2:]).unbind(2)
        lb = self.lower_bound
        # log f and 1 - f from the same pre-activation, in log space for stability
        log_f = F.logsigmoid(f) if lb == 0 else (lb + (1 - lb) * f.sigmoid()).log()
        key = 1 - log_f.exp()
        o = gla_chunkwise(F.silu(q), key, i, log_f, chunk_size=self.chunk_size, scale=1.0)
        o = self.o_norm(o) * F.silu(self.gate_proj(hidden_states).view(heads))
        return self.o_proj(o.reshape(b, t, self.d_model)), None, past_key_values


