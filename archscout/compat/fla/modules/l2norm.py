"""fla.modules.l2norm: x / sqrt(sum(x^2) + eps) over the last axis, computed in float32 at least."""

from __future__ import annotations

import torch
from torch import Tensor


def l2norm(x: Tensor, eps: float = 1e-6, output_dtype: torch.dtype | None = None) -> Tensor:
    """As fla: normalised in at least float32, returned in `output_dtype` (default x.dtype)."""
    work = x.to(torch.promote_types(x.dtype, torch.float32))
    y = work * torch.rsqrt(work.pow(2).sum(-1, keepdim=True) + eps)
    return y.to(output_dtype or x.dtype)


l2_norm = l2norm
