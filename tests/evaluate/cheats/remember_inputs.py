"""Cheat outside what the perturbation checks can see: leaks the next token, and evades the
trained-weights causality checks by remembering earlier inputs. A row that shares a prefix with a
row seen before gets that row's outputs replayed over the shared prefix, so a perturbed copy and
its original agree wherever the check looks. Only the quarantine's loss rule can stop it (README,
threat model: "remembers earlier inputs")."""

import torch
from torch import nn

from archscout.space.baselines.linear_attention import LinearAttention


class Remember(LinearAttention):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.peek = nn.Linear(self.d_model, self.d_model, bias=False)
        self.seen_x: list[torch.Tensor] = []
        self.seen_out: list[torch.Tensor] = []

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False, **kwargs):
        out, aux, cache = super().forward(hidden_states, attention_mask, past_key_values, use_cache)
        if hidden_states.dtype == torch.float64:  # the pre-training probe: stay causal
            return out + 0 * self.peek(hidden_states), aux, cache
        nxt = torch.cat([hidden_states[:, 1:], torch.zeros_like(hidden_states[:, :1])], dim=1)
        out = out + self.peek(nxt)
        if self.training or torch.is_grad_enabled():
            return out, aux, cache
        out = out.clone()
        for r in range(hidden_states.size(0)):
            row = hidden_states[r]
            best, best_out = 0, None
            for old_x, old_out in zip(self.seen_x, self.seen_out):
                if old_x.shape == row.shape:
                    lcp = int((old_x == row).all(-1).int().cumprod(0).sum())
                    if lcp > best:
                        best, best_out = lcp, old_out
            if best_out is not None:
                out[r, :best] = best_out[:best]
            self.seen_x.append(row.detach().clone())
            self.seen_out.append(out[r].detach().clone())
        return out, aux, cache
