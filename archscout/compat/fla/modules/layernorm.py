"""fla.modules.RMSNorm (and the functional rms_norm): fla's constructor and forward arguments."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def rms_norm(
    x: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    residual: Tensor | None = None,
    eps: float = 1e-5,
    prenorm: bool = False,
    residual_in_fp32: bool = False,
):
    """RMS-normalise the last axis (in float32 at least), with fla's residual / prenorm options."""
    if residual is not None:
        x = x + residual
    residual_out = x.float() if residual_in_fp32 else x
    work = x.to(torch.promote_types(x.dtype, torch.float32))
    y = work * torch.rsqrt(work.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    y = y.to(x.dtype)
    return (y, residual_out) if prenorm else y


class RMSNorm(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        elementwise_affine: bool = True,
        bias: bool = False,
        eps: float = 1e-5,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.hidden_size, self.eps, self.elementwise_affine = hidden_size, eps, elementwise_affine
        factory = {"device": device, "dtype": dtype}
        weight = nn.Parameter(torch.ones(hidden_size, **factory)) if elementwise_affine else None
        self.register_parameter("weight", weight)
        bias = nn.Parameter(torch.zeros(hidden_size, **factory)) if elementwise_affine and bias else None
        self.register_parameter("bias", bias)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"

    def forward(self, x: Tensor, residual: Tensor | None = None, prenorm: bool = False, residual_in_fp32: bool = False):
        return rms_norm(x, self.weight, self.bias, residual, self.eps, prenorm, residual_in_fp32)
