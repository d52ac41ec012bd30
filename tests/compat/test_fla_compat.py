"""archscout.compat.fla against the naive references (float64, outputs and gradients) and against
fla's calling convention: initial/final state, head_first, packed sequences (cu_seqlens), the short
convolution's cache, the padding helpers and the Cache object. A last test compares compat with the
real flash-linear-attention kernels; it runs only where fla and a CUDA device are present."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from archscout.compat.fla.layers.utils import get_unpad_data, index_first_axis, pad_input
from archscout.compat.fla.models.utils import Cache
from archscout.compat.fla.modules import FusedRMSNormGated, RMSNorm, ShortConvolution, l2norm
from archscout.compat.fla.ops import (
    chunk_delta_rule,
    chunk_gated_delta_rule,
    chunk_gla,
    chunk_linear_attn,
    chunk_retention,
    chunk_simple_gla,
    fused_recurrent_delta_rule,
)
from archscout.space.ops.conv import short_conv_naive
from archscout.space.ops.delta import delta_rule_naive
from archscout.space.ops.gated_delta import gated_delta_rule_naive
from archscout.space.ops.linear_attn import decay_linear_attn_naive, gla_naive
from archscout.space.ops.retention import retention_naive

TOL = dict(atol=1e-9, rtol=1e-7)
B, T, H, K, V = 2, 45, 3, 8, 6


def _inputs(seed=0, b=B, t=T):
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    return {
        "q": randn(b, t, H, K),
        "k": F.normalize(randn(b, t, H, K), dim=-1),
        "v": randn(b, t, H, V),
        "beta": torch.sigmoid(randn(b, t, H)),
        "g": F.logsigmoid(randn(b, t, H) + 2),
        "gk": F.logsigmoid(randn(b, t, H, K) + 2),
        "h0": 0.3 * randn(b, H, K, V),
    }


CASES = {
    "delta": (
        lambda i, h0: chunk_delta_rule(i["q"], i["k"], i["v"], i["beta"], initial_state=h0, output_final_state=True),
        lambda i, h0: delta_rule_naive(i["q"], i["k"], i["v"], i["beta"], initial_state=h0, return_state=True),
    ),
    "delta_recurrent": (
        lambda i, h0: fused_recurrent_delta_rule(i["q"], i["k"], i["v"], i["beta"], initial_state=h0,
                                                 output_final_state=True),
        lambda i, h0: delta_rule_naive(i["q"], i["k"], i["v"], i["beta"], initial_state=h0, return_state=True),
    ),
    "gated_delta": (
        lambda i, h0: chunk_gated_delta_rule(i["q"], i["k"], i["v"], i["g"], i["beta"], initial_state=h0,
                                             output_final_state=True),
        lambda i, h0: gated_delta_rule_naive(i["q"], i["k"], i["v"], i["beta"], i["g"], initial_state=h0,
                                             return_state=True),
    ),
    "gla": (
        lambda i, h0: chunk_gla(i["q"], i["k"], i["v"], i["gk"], initial_state=h0, output_final_state=True),
        lambda i, h0: gla_naive(i["q"], i["k"], i["v"], i["gk"], initial_state=h0, return_state=True),
    ),
    "simple_gla": (
        lambda i, h0: chunk_simple_gla(i["q"], i["k"], i["v"], i["g"], initial_state=h0, output_final_state=True),
        lambda i, h0: decay_linear_attn_naive(i["q"], i["k"], i["v"], i["g"], initial_state=h0, return_state=True),
    ),
    "linear_attn": (
        lambda i, h0: chunk_linear_attn(i["q"], i["k"], i["v"], initial_state=h0, output_final_state=True),
        lambda i, h0: decay_linear_attn_naive(i["q"], i["k"], i["v"], None, initial_state=h0, return_state=True),
    ),
}


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_compat_op_matches_naive_reference_with_gradients(case, with_state):
    fast, naive = CASES[case]
    leaves = {n: x.clone().requires_grad_(True) for n, x in _inputs().items()}
    h0 = leaves["h0"] if with_state else None
    (o_f, s_f), (o_n, s_n) = fast(leaves, h0), naive(leaves, h0)
    assert s_f.dtype == torch.float32  # fla returns the final state in float32
    torch.testing.assert_close(o_f, o_n, **TOL)
    torch.testing.assert_close(s_f, s_n.float())
    up = torch.randn_like(o_f)
    grads_f = torch.autograd.grad((o_f * up).sum(), list(leaves.values()), allow_unused=True)
    grads_n = torch.autograd.grad((o_n * up).sum(), list(leaves.values()), allow_unused=True)
    for name, gf, gn in zip(leaves, grads_f, grads_n):
        assert (gf is None) == (gn is None), name
        if gf is not None:
            torch.testing.assert_close(gf, gn, **TOL, msg=lambda m, name=name: f"grad of {name}: {m}")


def test_retention_uses_fla_fixed_decays():
    i = _inputs()
    o, _ = chunk_retention(i["q"], i["k"], i["v"])
    gamma = 1 - 2.0 ** (-5.0 - torch.arange(H, dtype=torch.float64))
    torch.testing.assert_close(o, retention_naive(i["q"], i["k"], i["v"], gamma), **TOL)


def test_head_first_layout_gives_the_same_result():
    i = _inputs()
    o, s = chunk_delta_rule(i["q"], i["k"], i["v"], i["beta"], output_final_state=True)
    t = lambda x: x.transpose(1, 2)  # noqa: E731
    o_hf, s_hf = chunk_delta_rule(t(i["q"]), t(i["k"]), t(i["v"]), t(i["beta"]), output_final_state=True,
                                  head_first=True)
    torch.testing.assert_close(t(o_hf), o, **TOL)
    torch.testing.assert_close(s_hf, s)


def test_packed_sequences_run_as_separate_sequences():
    a, b = _inputs(1, b=1, t=20), _inputs(2, b=1, t=27)
    packed = {n: torch.cat([a[n], b[n]], dim=1) for n in ("q", "k", "v", "beta", "g")}
    h0 = torch.cat([a["h0"], b["h0"]], dim=0)
    cu = torch.tensor([0, 20, 47], dtype=torch.int32)
    o, s = chunk_gated_delta_rule(packed["q"], packed["k"], packed["v"], packed["g"], packed["beta"],
                                  initial_state=h0, output_final_state=True, cu_seqlens=cu)
    for n, (seq, sl) in enumerate(((a, slice(0, 20)), (b, slice(20, 47)))):
        o_i, s_i = gated_delta_rule_naive(seq["q"], seq["k"], seq["v"], seq["beta"], seq["g"],
                                          initial_state=seq["h0"], return_state=True)
        torch.testing.assert_close(o[:, sl], o_i, **TOL)
        torch.testing.assert_close(s[n : n + 1], s_i.float())


def test_qk_l2norm_in_kernel_normalises_queries_and_keys():
    i = _inputs()
    raw_q, raw_k = 3 * i["q"], 5 * i["k"]
    o, _ = chunk_delta_rule(raw_q, raw_k, i["v"], i["beta"], use_qk_l2norm_in_kernel=True)
    torch.testing.assert_close(o, delta_rule_naive(l2norm(raw_q), l2norm(raw_k), i["v"], i["beta"]), **TOL)


@pytest.mark.parametrize("activation", [None, "silu"])
def test_short_convolution_matches_naive_and_returns_fla_tuple(activation):
    torch.manual_seed(0)
    conv = ShortConvolution(6, 4, bias=True, activation=activation).double()
    assert conv.weight.shape == (6, 1, 4)  # an nn.Conv1d, as in fla
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    y, state = conv(x)
    want = short_conv_naive(x, conv.weight.squeeze(1), conv.bias)
    torch.testing.assert_close(y, want if activation is None else F.silu(want), **TOL)
    assert state is None


def test_short_convolution_cache_hands_over_between_calls():
    torch.manual_seed(0)
    conv = ShortConvolution(5, 4, activation="silu").double()
    x = torch.randn(2, 13, 5, dtype=torch.float64)
    whole, final = conv(x, output_final_state=True)
    first, cache = conv(x[:, :6], output_final_state=True)
    second, final2 = conv(x[:, 6:], cache=cache, output_final_state=True)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, **TOL)
    torch.testing.assert_close(final2, final, **TOL)
    assert final.shape == (2, 5, 4)
    # a step at a time, as in decoding
    cache = torch.zeros(2, 5, 4, dtype=torch.float64)
    steps = []
    for t in range(13):
        y_t, cache = conv.step(x[:, t : t + 1], cache=cache)
        steps.append(y_t)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, **TOL)


def test_short_convolution_does_not_mix_packed_sequences():
    torch.manual_seed(0)
    conv = ShortConvolution(3, 4, activation=None).double()
    a, b = torch.randn(1, 5, 3, dtype=torch.float64), torch.randn(1, 7, 3, dtype=torch.float64)
    y, _ = conv(torch.cat([a, b], dim=1), cu_seqlens=torch.tensor([0, 5, 12]))
    torch.testing.assert_close(y[:, 5:], conv(b)[0], **TOL)


def test_norms_follow_their_formulas():
    torch.manual_seed(0)
    x, g = torch.randn(2, 7, 8, dtype=torch.float64), torch.randn(2, 7, 8, dtype=torch.float64)
    norm = RMSNorm(8, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.uniform_()
    rms = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(norm(x), rms * norm.weight, **TOL)
    gated = FusedRMSNormGated(8, eps=1e-5).double()
    torch.testing.assert_close(gated(x, g), rms * F.silu(g), **TOL)
    torch.testing.assert_close(l2norm(x), x / (x.pow(2).sum(-1, keepdim=True) + 1e-6).sqrt(), **TOL)
    half = torch.randn(4, 8).bfloat16()
    assert RMSNorm(8)(half).dtype == torch.bfloat16 and l2norm(half).dtype == torch.bfloat16


def test_unpad_and_pad_round_trip():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    indices, cu_seqlens, max_len = get_unpad_data(mask)
    assert cu_seqlens.tolist() == [0, 3, 5] and max_len == 3 and cu_seqlens.dtype == torch.int32
    x = torch.randn(2, 4, 5)
    packed = index_first_axis(x.reshape(8, 5), indices)  # [5, 5]
    back = pad_input(packed, indices, 2, 4)
    torch.testing.assert_close(back, x * mask[..., None])


def test_cache_keeps_layer_states_like_fla():
    cache = Cache()
    assert len(cache) == 0
    cache.update(recurrent_state=torch.ones(1), conv_state=(None,), layer_idx=0, offset=4)
    cache.update(recurrent_state=torch.zeros(1), layer_idx=1, offset=4)
    assert len(cache) == 2 and cache.get_seq_length() == 4
    cache.update(recurrent_state=torch.full((1,), 2.0), layer_idx=0, offset=1)
    assert float(cache[0]["recurrent_state"]) == 2.0 and cache[0]["conv_state"] == (None,)
    with pytest.raises(KeyError):
        cache[5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for fla's Triton kernels")
@pytest.mark.skipif(importlib.util.find_spec("fla") is None, reason="flash-linear-attention is not installed")
@pytest.mark.parametrize("case", ["delta", "gated_delta", "gla", "simple_gla", "linear_attn"])
def test_compat_matches_real_fla_on_gpu(case):
    import fla.ops as real

    names = {"delta": "chunk_delta_rule", "gated_delta": "chunk_gated_delta_rule", "gla": "chunk_gla",
             "simple_gla": "chunk_simple_gla", "linear_attn": "chunk_linear_attn"}
    i = {n: x.float().cuda() for n, x in _inputs().items()}
    args = {
        "delta": (i["q"], i["k"], i["v"], i["beta"]),
        "gated_delta": (i["q"], i["k"], i["v"], i["g"], i["beta"]),
        "gla": (i["q"], i["k"], i["v"], i["gk"]),
        "simple_gla": (i["q"], i["k"], i["v"], i["g"]),
        "linear_attn": (i["q"], i["k"], i["v"]),
    }[case]
    ours = getattr(__import__("archscout.compat.fla.ops", fromlist=["x"]), names[case])
    o_real, s_real = getattr(real, names[case])(*args, initial_state=i["h0"], output_final_state=True)
    o_ours, s_ours = ours(*args, initial_state=i["h0"], output_final_state=True)
    torch.testing.assert_close(o_ours, o_real, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(s_ours, s_real.float(), atol=2e-3, rtol=2e-3)
