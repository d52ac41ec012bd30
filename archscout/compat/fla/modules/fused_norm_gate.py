"""fla.modules.FusedRMSNormGated: RMSNorm(x) * act(g), act swish/silu or sigmoid, as one module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archscout.compat.fla.modules.layernorm import rms_norm

ACTIVATIONS = {"swish": F.silu, "silu": F.silu, "sigmoid": torch.sigmoid}


class FusedRMSNormGated(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        elementwise_affine: bool = True,
        eps: float = 1e-5,
        activation: str = "swish",
        device=None,
        dtype=None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unsupported activation: {activation}")
        self.hidden_size, self.eps, self.activation = hidden_size, eps, activation
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}, activation={self.activation}"

    def forward(
        self,
        x: Tensor,
        g: Tensor,
        residual: Tensor | None = None,
        prenorm: bool = False,
        residual_in_fp32: bool = False,
    ):
        out = rms_norm(x, self.weight, None, residual, self.eps, prenorm, residual_in_fp32)
        y, residual_out = out if prenorm else (out, None)
        # the gate is applied in float32 at least, as fla's fused kernel does
        work = torch.promote_types(y.dtype, torch.float32)
        y = (y.to(work) * ACTIVATIONS[self.activation](g.to(work))).to(x.dtype)
        return (y, residual_out) if prenorm else y
