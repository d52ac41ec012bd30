"""Short causal depthwise 1-D convolution, the "ShortConvolution" of DeltaNet-family layers.

y_t[d] = bias[d] + sum_{i < W} weight[d, i] * x_{t - W + 1 + i}[d], with x before position 0 taken
as zero, so weight[:, -1] multiplies the current token. Covers the full-sequence form only; no
cached state for step-by-step decoding, no activation (the layer applies it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def short_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x [B, T, D], weight [D, W], bias [D] or None -> [B, T, D]."""
    width = weight.shape[-1]
    # left padding only: position t sees inputs t - W + 1 .. t and nothing later
    padded = F.pad(x.transpose(1, 2), (width - 1, 0))  # [B, D, T + W - 1]
    y = F.conv1d(padded, weight.unsqueeze(1), bias, groups=x.shape[-1])  # [B, D, T]
    return y.transpose(1, 2)


def short_conv_naive(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Token-by-token reference for `short_conv`."""
    width = weight.shape[-1]
    out = []
    for t in range(x.shape[1]):
        y_t = x.new_zeros(x.shape[0], x.shape[2]) if bias is None else bias.expand(x.shape[0], -1)
        for i in range(width):
            src = t - width + 1 + i
            if src >= 0:
                y_t = y_t + weight[:, i] * x[:, src]
        out.append(y_t)
    return torch.stack(out, dim=1)
