"""fla.modules.ShortConvolution: a causal depthwise conv1d layer with fla's cache arguments.

Like fla's, it is an `nn.Conv1d` (weight [D, 1, W]) whose forward takes x [B, T, D] and returns
(y [B, T, D], cache or None). The cache holds the last W inputs per sequence, [N, D, W]; given one,
its last W - 1 columns are the left context of the first position (instead of zeros), and with
`output_final_state` the updated cache is returned. `cu_seqlens` (packed sequences in a batch of
one) restarts the convolution at each sequence boundary. The convolution itself is
`archscout.space.ops.short_conv` (tested against its naive reference). No Triton/causal-conv1d
kernels: one F.conv1d call per sequence of a packed batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archscout.space.ops.conv import short_conv

ACTIVATIONS = {None: None, "identity": None, "silu": F.silu, "swish": F.silu}


class ShortConvolution(nn.Conv1d):
    def __init__(
        self,
        hidden_size: int,
        kernel_size: int,
        bias: bool = False,
        activation: str | None = "silu",
        use_fast_conv1d: bool = True,
        device=None,
        dtype=None,
        **kwargs,
    ):
        super().__init__(
            in_channels=hidden_size,
            out_channels=hidden_size,
            kernel_size=kernel_size,
            groups=hidden_size,
            bias=bias,
            padding=kernel_size - 1,
            device=device,
            dtype=dtype,
        )
        if activation not in ACTIVATIONS:
            raise ValueError(f"Activation `{activation}` is not supported yet.")
        self.hidden_size = hidden_size
        self.activation = activation
        self.use_fast_conv1d = use_fast_conv1d

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation}"

    def _one(self, x: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """x [B, T, D], cache [B, D, W] or None -> y [B, T, D], new cache [B, D, W]."""
        width = self.kernel_size[0]
        context = 0
        if cache is not None and width > 1:
            left = cache[:, :, 1:].transpose(1, 2).to(x.dtype)  # [B, W - 1, D]
            x = torch.cat([left, x], dim=1)
            context = width - 1
        y = short_conv(x, self.weight.squeeze(1), self.bias)[:, context:]  # [B, T, D]
        act = ACTIVATIONS[self.activation]
        if act is not None:
            y = act(y)
        tail = x[:, -width:].transpose(1, 2)  # [B, D, <= W]
        new_cache = F.pad(tail, (width - tail.shape[-1], 0))
        return y, new_cache

    def forward(
        self,
        x: Tensor,
        residual: Tensor | None = None,
        mask: Tensor | None = None,
        cache: Tensor | None = None,
        output_final_state: bool = False,
        cu_seqlens: Tensor | None = None,
        **kwargs,
    ) -> tuple[Tensor, Tensor | None]:
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        if cu_seqlens is None:
            y, final = self._one(x, cache)
        else:
            bounds = [int(b) for b in cu_seqlens.tolist()]
            ys, finals = [], []
            for i, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
                y_i, f_i = self._one(x[:, start:end], None if cache is None else cache[i : i + 1])
                ys.append(y_i)
                finals.append(f_i)
            y, final = torch.cat(ys, dim=1), torch.cat(finals, dim=0)
        if residual is not None:
            y = y + residual
        if cache is not None and not output_final_state:
            # fla updates a given cache in place; keep that contract for callers that rely on it
            with torch.no_grad():
                cache.copy_(final.detach().to(cache.dtype))
        return y, (final if output_final_state else None)

    def step(self, x: Tensor, residual: Tensor | None = None, cache: Tensor | None = None, **kwargs):
        """One decoding step: x [B, 1, D] (or [B, D]) with the cache of the last W inputs."""
        squeeze = x.dim() == 2
        x = x.unsqueeze(1) if squeeze else x
        y, final = self.forward(x, residual, cache=cache, output_final_state=True)
        return (y.squeeze(1) if squeeze else y), final

    @property
    def state_size(self) -> int:
        return self.hidden_size * self.kernel_size[0]
