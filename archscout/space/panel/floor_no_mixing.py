"""Floor: no token mixing at all. Each position sees only itself, so no recall task can be solved.

A calibration control, not an architecture from a paper: the instrument must rank it last. It plays
the role of the "no sequence mixer" lower bound that Zoology (Arora et al. 2023, "Zoology: Measuring
and Improving Recall in Efficient Language Models", arXiv 2312.04927) uses to show MQAR needs token
mixing: a gated per-token projection with the same parameter shape as the other mixers' value path.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class NoMixing(nn.Module):
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
        o = self.v_proj(hidden_states) * F.silu(self.gate_proj(hidden_states))
        return self.o_proj(o), None, past_key_values
