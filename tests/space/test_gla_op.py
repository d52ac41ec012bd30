"""The diagonal-decay (GLA / HGRN-2) chunkwise op against its token-by-token reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archscout.space.ops.linear_attn import gla_chunkwise, gla_naive

TOL = dict(atol=1e-9, rtol=1e-7)


def _inputs(b, t, h, d_k, d_v, strong: bool = False):
    gen = torch.Generator().manual_seed(0)
    randn = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    # strong decay: log decays down to ~-8 per token, so exp(-cumsum) within a chunk would overflow
    # if the op divided by the decay instead of masking before the exponential
    g = F.logsigmoid(randn(b, t, h, d_k) * (4 if strong else 1) + (0 if strong else 2))
    return {"q": randn(b, t, h, d_k), "k": randn(b, t, h, d_k), "v": randn(b, t, h, d_v), "g": g}


@pytest.mark.parametrize("chunk", [4, 16])
@pytest.mark.parametrize("strong", [False, True])
def test_gla_chunkwise_matches_naive_in_values_and_gradients(chunk, strong):
    leaves = {k: v.requires_grad_(True) for k, v in _inputs(2, 37, 2, 8, 5, strong).items()}
    fast = gla_chunkwise(**leaves, chunk_size=chunk)
    slow = gla_naive(**leaves)
    torch.testing.assert_close(fast, slow, **TOL)
    upstream = torch.randn_like(fast)
    for name, gf, gn in zip(
        leaves, torch.autograd.grad(fast, list(leaves.values()), upstream), torch.autograd.grad(slow, list(leaves.values()), upstream)
    ):
        torch.testing.assert_close(gf, gn, **TOL, msg=lambda m, name=name: f"grad of {name}: {m}")


def test_gla_chunkwise_is_finite_in_float32_under_strong_decay():
    x = {k: v.float().requires_grad_(True) for k, v in _inputs(1, 64, 2, 8, 8, strong=True).items()}
    out = gla_chunkwise(**x, chunk_size=32)
    out.sum().backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(v.grad).all() for v in x.values())
