"""Every chunkwise op matches its token-by-token reference in outputs and in gradients (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archscout.space.ops.conv import short_conv, short_conv_naive
from archscout.space.ops.delta import delta_rule_chunkwise, delta_rule_naive
from archscout.space.ops.gated_delta import gated_delta_rule_chunkwise, gated_delta_rule_naive
from archscout.space.ops.linear_attn import (
    decay_linear_attn_chunkwise,
    decay_linear_attn_naive,
    linear_attn_chunkwise,
    linear_attn_naive,
)
from archscout.space.ops.retention import retention_chunkwise, retention_naive

TOL = dict(atol=1e-9, rtol=1e-7)
SHAPES = [(1, 1, 4, 4), (2, 3, 8, 5), (2, 2, 16, 16)]  # (B, H, K, V)
CHUNKS = [4, 8, 16]
SEQ_LEN = 37  # not a multiple of any chunk size


def make_inputs(b, h, d_k, d_v, seed=0, t=SEQ_LEN):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    return {
        "q": randn(b, t, h, d_k),
        "k": F.normalize(randn(b, t, h, d_k), dim=-1),  # the delta rule expects unit keys
        "v": randn(b, t, h, d_v),
        "beta": torch.sigmoid(randn(b, t, h)),
        "g": F.logsigmoid(randn(b, t, h) + 2),  # log decays in (-inf, 0)
        "gamma": 1 - 2.0 ** (-5 - torch.arange(h, dtype=torch.float64)),
        "feature": lambda x: F.elu(x) + 1,
    }


def assert_same_values_and_grads(fast, naive, inputs: dict[str, torch.Tensor]):
    leaves = {name: x.clone().requires_grad_(True) for name, x in inputs.items()}
    out_fast, out_naive = fast(**leaves), naive(**leaves)
    torch.testing.assert_close(out_fast, out_naive, **TOL)
    upstream = torch.randn_like(out_fast)
    grads_fast = torch.autograd.grad(out_fast, list(leaves.values()), upstream)
    grads_naive = torch.autograd.grad(out_naive, list(leaves.values()), upstream)
    for name, gf, gn in zip(leaves, grads_fast, grads_naive):
        torch.testing.assert_close(gf, gn, **TOL, msg=lambda m, name=name: f"grad of {name}: {m}")


def pick(inputs, *names):
    return {n: inputs[n] for n in names}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("shape", SHAPES)
def test_delta_rule_chunkwise_matches_naive(shape, chunk):
    inputs = pick(make_inputs(*shape), "q", "k", "v", "beta")
    fast = lambda **x: delta_rule_chunkwise(**x, chunk_size=chunk)  # noqa: E731
    assert_same_values_and_grads(fast, delta_rule_naive, inputs)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gated_delta_rule_chunkwise_matches_naive(shape, chunk):
    inputs = pick(make_inputs(*shape), "q", "k", "v", "beta", "g")
    fast = lambda **x: gated_delta_rule_chunkwise(**x, chunk_size=chunk)  # noqa: E731
    assert_same_values_and_grads(fast, gated_delta_rule_naive, inputs)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("shape", SHAPES)
def test_linear_attn_chunkwise_matches_naive(shape, chunk, normalize):
    raw = make_inputs(*shape)
    inputs = {"q": raw["feature"](raw["q"]), "k": raw["feature"](raw["k"]), "v": raw["v"]}
    fast = lambda **x: linear_attn_chunkwise(**x, chunk_size=chunk, normalize=normalize)  # noqa: E731
    naive = lambda **x: linear_attn_naive(**x, normalize=normalize)  # noqa: E731
    assert_same_values_and_grads(fast, naive, inputs)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("shape", SHAPES)
def test_decay_linear_attn_chunkwise_matches_naive(shape, chunk, normalize):
    raw = make_inputs(*shape)
    inputs = {"q": raw["feature"](raw["q"]), "k": raw["feature"](raw["k"]), "v": raw["v"], "g": raw["g"]}
    fast = lambda **x: decay_linear_attn_chunkwise(**x, chunk_size=chunk, normalize=normalize)  # noqa: E731
    naive = lambda **x: decay_linear_attn_naive(**x, normalize=normalize)  # noqa: E731
    assert_same_values_and_grads(fast, naive, inputs)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("shape", SHAPES)
def test_retention_chunkwise_matches_naive(shape, chunk):
    raw = make_inputs(*shape)
    inputs = pick(raw, "q", "k", "v", "gamma")
    fast = lambda **x: retention_chunkwise(**x, chunk_size=chunk)  # noqa: E731
    assert_same_values_and_grads(fast, retention_naive, inputs)


@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("with_bias", [False, True])
def test_short_conv_matches_naive(width, with_bias):
    gen = torch.Generator().manual_seed(1)
    inputs = {
        "x": torch.randn(2, SEQ_LEN, 6, generator=gen, dtype=torch.float64),
        "weight": torch.randn(6, width, generator=gen, dtype=torch.float64),
    }
    if with_bias:
        inputs["bias"] = torch.randn(6, generator=gen, dtype=torch.float64)
    assert_same_values_and_grads(short_conv, short_conv_naive, inputs)


def test_gated_delta_rule_is_stable_under_strong_decay_in_float32():
    raw = make_inputs(2, 2, 8, 8)
    inputs = {n: raw[n].float() for n in ("q", "k", "v", "beta")}
    # cumulative log decay reaches about -3000 within a chunk: any exp of a positive difference overflows
    g = torch.full_like(inputs["beta"], -100.0).requires_grad_(True)
    out = gated_delta_rule_chunkwise(**inputs, g=g, chunk_size=32)
    (grad,) = torch.autograd.grad(out.sum(), g)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    torch.testing.assert_close(out, gated_delta_rule_naive(**inputs, g=g), atol=1e-5, rtol=1e-4)


def test_delta_rule_chunkwise_runs_under_bfloat16_autocast():
    raw = make_inputs(1, 2, 8, 8)
    inputs = {n: raw[n].float() for n in ("q", "k", "v", "beta")}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = delta_rule_chunkwise(**inputs, chunk_size=16)
    torch.testing.assert_close(out.float(), delta_rule_naive(**inputs), atol=5e-2, rtol=5e-2)
