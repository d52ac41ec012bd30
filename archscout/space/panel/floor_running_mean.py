"""Floor: a causal running mean of projected values, o_t = mean_{s <= t} W_v x_s (no queries, no keys).

A calibration control, not an architecture from a paper: it mixes tokens but cannot address any
one of them, so it carries bag-of-words context for language modelling and nothing for associative
recall; the instrument must rank it at or near the bottom. It is the uniform-attention limit of
linear attention (Katharopoulos et al. 2020, "Transformers are RNNs", arXiv 2006.16236, with
constant features).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RunningMean(nn.Module):
    def __init__(self, d_model: int | None = None, hidden_size: int | None = None, num_heads: int = 4,
                 layer_idx: int | None = None, **kwargs):
        super().__init__()
        width = d_model if d_model is not None else hidden_size
        if width is None:
            raise ValueError("pass d_model (or hidden_size)")
        self.d_model, self.layer_idx = width, layer_idx
        self.v_proj = nn.Linear(width, width, bias=False)
        self.gate_proj = nn.Linear(width, width, bias=False)
        self.o_proj = nn.Linear(width, width, bias=False)
        for layer in (self.v_proj, self.gate_proj, self.o_proj):
            nn.init.normal_(layer.weight, std=0.02)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        v = self.v_proj(hidden_states)  # [B, T, D]
        count = torch.arange(1, v.shape[1] + 1, device=v.device, dtype=v.dtype)[None, :, None]
        o = v.cumsum(dim=1) / count
        return self.o_proj(o * F.silu(self.gate_proj(hidden_states))), None, past_key_values
