"""Small helpers that every built-in candidate file shares: the model width, the init of a linear
layer, a depthwise convolution kernel.

The five baselines and the offline proposer's template import them from here (they were copied
into each file). Candidate files run in the sandboxed worker, which imports `archscout.space.*`
as the panel files and the ops already do, so this module imports torch and nothing else of
archscout. Not here: the tensor functions (ops/) and the backbone that hosts a mixer (backbone.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["conv_weight", "init_linear", "resolve_width"]


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


def conv_weight(channels: int, width: int) -> nn.Parameter:
    """Depthwise kernel [channels, width], initialised as nn.Conv1d would (fan-in = width)."""
    bound = 1 / math.sqrt(width)
    return nn.Parameter(torch.empty(channels, width).uniform_(-bound, bound))
