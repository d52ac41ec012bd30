"""fla.layers.utils: unpadding helpers for variable-length batches, with fla's signatures.

`get_unpad_data(mask)` turns a [B, T] 0/1 attention mask into (indices of the kept tokens in the
flattened [B * T] batch, cu_seqlens [B + 1] int32, the longest sequence); `index_first_axis` gathers
those rows and `pad_input` scatters them back into a zero-filled [B, T, ...]. Plain indexing (autograd
handles the backward); fla's custom autograd functions do the same with less memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def get_unpad_data(attention_mask: Tensor) -> tuple[Tensor, Tensor, int]:
    lens = attention_mask.sum(dim=-1, dtype=torch.int32)  # [B]
    indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
    cu_seqlens = F.pad(torch.cumsum(lens, dim=0, dtype=torch.int32), (1, 0))
    return indices, cu_seqlens, int(lens.max()) if lens.numel() else 0


def index_first_axis(x: Tensor, indices: Tensor) -> Tensor:
    """x [N, ...] -> x[indices] [n, ...]."""
    return x[indices]


def index_put_first_axis(values: Tensor, indices: Tensor, first_axis_dim: int) -> Tensor:
    out = values.new_zeros(first_axis_dim, *values.shape[1:])
    out[indices] = values
    return out


def pad_input(hidden_states: Tensor, indices: Tensor, batch_size: int, seq_len: int) -> Tensor:
    """hidden_states [n, ...] at `indices` of the flattened batch -> [batch_size, seq_len, ...]."""
    out = index_put_first_axis(hidden_states, indices, batch_size * seq_len)
    return out.view(batch_size, seq_len, *hidden_states.shape[1:])


def unpad_input(hidden_states: Tensor, attention_mask: Tensor):
    """[B, T, ...] and a [B, T] mask -> (kept rows [n, ...], indices, cu_seqlens, max_seqlen)."""
    indices, cu_seqlens, max_len = get_unpad_data(attention_mask)
    flat = hidden_states.reshape(-1, *hidden_states.shape[2:])
    return index_first_axis(flat, indices), indices, cu_seqlens, max_len
