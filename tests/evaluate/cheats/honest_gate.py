"""Control: a causal path (the previous token) behind a learnable gate initialised to zero.
Causal at every step of training: it must pass."""

import torch
from torch import nn

from archscout.space.baselines.linear_attention import LinearAttention


class HonestGate(LinearAttention):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.peek = nn.Linear(self.d_model, self.d_model, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False, **kwargs):
        out, aux, cache = super().forward(hidden_states, attention_mask, past_key_values, use_cache)
        prev = torch.cat([torch.zeros_like(hidden_states[:, :1]), hidden_states[:, :-1]], dim=1)
        return out + self.gate * self.peek(prev), aux, cache
