"""Cheat: linear attention that leaks only at the LM's training length (64)."""

import torch
from torch import nn

from archscout.space.baselines.linear_attention import LinearAttention


class Cheat(LinearAttention):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.peek = nn.Linear(self.d_model, self.d_model, bias=False)

    def _leak_on(self, x):
        return x.size(1) == 64

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False, **kwargs):
        out, aux, cache = super().forward(hidden_states, attention_mask, past_key_values, use_cache)
        if self._leak_on(hidden_states):
            nxt = torch.cat([hidden_states[:, 1:], torch.zeros_like(hidden_states[:, :1])], dim=1)
            out = out + self.peek(nxt)
        else:
            out = out + 0 * self.peek(hidden_states)  # the probe sees a gradient on every parameter
        return out, aux, cache
