"""The carried-state extensions of the chunkwise ops (initial state in, final state out) match their
token-by-token references in outputs, final states and gradients (float64), and splitting a sequence
in two with the state handed over gives the same result as one pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archscout.space.ops.delta import delta_rule_chunkwise, delta_rule_naive
from archscout.space.ops.gated_delta import gated_delta_rule_chunkwise, gated_delta_rule_naive
from archscout.space.ops.linear_attn import (
    decay_linear_attn_chunkwise,
    decay_linear_attn_naive,
    gla_chunkwise,
    gla_naive,
)

TOL = dict(atol=1e-9, rtol=1e-7)
SHAPES = [(1, 1, 4, 4), (2, 3, 8, 5)]  # (B, H, K, V)
SEQ_LEN = 23


def make_inputs(b, h, d_k, d_v, with_state: bool, seed=0, t=SEQ_LEN):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    inputs = {
        "q": randn(b, t, h, d_k),
        "k": F.normalize(randn(b, t, h, d_k), dim=-1),
        "v": randn(b, t, h, d_v),
        "beta": torch.sigmoid(randn(b, t, h)),
        "g": F.logsigmoid(randn(b, t, h) + 2),
        "gk": F.logsigmoid(randn(b, t, h, d_k) + 2),
    }
    if with_state:
        inputs["initial_state"] = 0.3 * randn(b, h, d_k, d_v)
    return inputs


OPS = {
    "delta": (
        lambda i, **kw: delta_rule_chunkwise(i["q"], i["k"], i["v"], i["beta"], chunk_size=8, **kw),
        lambda i, **kw: delta_rule_naive(i["q"], i["k"], i["v"], i["beta"], **kw),
    ),
    "gated_delta": (
        lambda i, **kw: gated_delta_rule_chunkwise(i["q"], i["k"], i["v"], i["beta"], i["g"], chunk_size=8, **kw),
        lambda i, **kw: gated_delta_rule_naive(i["q"], i["k"], i["v"], i["beta"], i["g"], **kw),
    ),
    "decay_linear": (
        lambda i, **kw: decay_linear_attn_chunkwise(i["q"], i["k"], i["v"], i["g"], chunk_size=8, **kw),
        lambda i, **kw: decay_linear_attn_naive(i["q"], i["k"], i["v"], i["g"], **kw),
    ),
    "linear": (
        lambda i, **kw: decay_linear_attn_chunkwise(i["q"], i["k"], i["v"], None, chunk_size=8, **kw),
        lambda i, **kw: decay_linear_attn_naive(i["q"], i["k"], i["v"], None, **kw),
    ),
    "gla": (
        lambda i, **kw: gla_chunkwise(i["q"], i["k"], i["v"], i["gk"], chunk_size=8, **kw),
        lambda i, **kw: gla_naive(i["q"], i["k"], i["v"], i["gk"], **kw),
    ),
}


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", sorted(OPS))
def test_chunkwise_state_matches_naive_values_and_grads(op, shape, with_state):
    fast, naive = OPS[op]
    inputs = make_inputs(*shape, with_state=with_state)
    leaves = {n: x.clone().requires_grad_(True) for n, x in inputs.items()}
    kw = {"initial_state": leaves.get("initial_state"), "return_state": True}
    (o_f, s_f), (o_n, s_n) = fast(leaves, **kw), naive(leaves, **kw)
    torch.testing.assert_close(o_f, o_n, **TOL)
    torch.testing.assert_close(s_f, s_n, **TOL)
    gen = torch.Generator().manual_seed(1)
    up_o = torch.randn(o_f.shape, generator=gen, dtype=torch.float64)
    up_s = torch.randn(s_f.shape, generator=gen, dtype=torch.float64)
    names = list(leaves)
    grads_f = torch.autograd.grad((o_f * up_o).sum() + (s_f * up_s).sum(), list(leaves.values()), allow_unused=True)
    grads_n = torch.autograd.grad((o_n * up_o).sum() + (s_n * up_s).sum(), list(leaves.values()), allow_unused=True)
    for name, gf, gn in zip(names, grads_f, grads_n):
        if gf is None or gn is None:
            assert gf is None and gn is None, name
            continue
        torch.testing.assert_close(gf, gn, **TOL, msg=lambda m, name=name: f"grad of {name}: {m}")
    if with_state:
        assert grads_f[names.index("initial_state")].abs().sum() > 0


@pytest.mark.parametrize("op", sorted(OPS))
def test_handing_the_state_over_equals_one_pass(op):
    fast, _ = OPS[op]
    inputs = make_inputs(2, 2, 4, 3, with_state=True)
    whole, final = fast(inputs, initial_state=inputs["initial_state"], return_state=True)
    cut = 13
    first = {n: (x[:, :cut] if x.dim() >= 3 and n != "initial_state" else x) for n, x in inputs.items()}
    second = {n: (x[:, cut:] if x.dim() >= 3 and n != "initial_state" else x) for n, x in inputs.items()}
    o1, s1 = fast(first, initial_state=inputs["initial_state"], return_state=True)
    o2, s2 = fast(second, initial_state=s1, return_state=True)
    torch.testing.assert_close(torch.cat([o1, o2], dim=1), whole, **TOL)
    torch.testing.assert_close(s2, final, **TOL)


def test_normalized_linear_attention_refuses_a_carried_state():
    inputs = make_inputs(1, 1, 4, 4, with_state=True)
    with pytest.raises(NotImplementedError):
        decay_linear_attn_chunkwise(inputs["q"], inputs["k"], inputs["v"], normalize=True, return_state=True)
