"""Every baseline file loads through the candidate contract, is causal, trains, and fits the backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archscout.space as space_pkg
from archscout.config import ModelSpec
from archscout.space.backbone import Backbone
from archscout.space.contract import call_mixer, construct, load_mixer_class

BASELINE_DIR = Path(space_pkg.__file__).parent / "baselines"
BASELINES = {
    "deltanet.py": "DeltaNet",
    "gated_deltanet.py": "GatedDeltaNet",
    "linear_attention.py": "LinearAttention",
    "retention.py": "Retention",
    "softmax_attention.py": "SoftmaxAttention",
}


def build(filename: str, dtype=torch.float32):
    torch.manual_seed(0)
    cls = load_mixer_class(BASELINE_DIR / filename)
    return construct(cls, d_model=32, num_heads=2, layer_idx=0).to(dtype)


@pytest.mark.parametrize("filename", BASELINES)
def test_baseline_loads_as_the_named_class(filename):
    assert load_mixer_class(BASELINE_DIR / filename).__name__ == BASELINES[filename]


@pytest.mark.parametrize("filename", BASELINES)
def test_baseline_output_is_finite_and_every_parameter_gets_a_gradient(filename):
    mixer = build(filename)
    x = torch.randn(2, 37, 32)
    out, aux = call_mixer(mixer, x)
    assert out.shape == x.shape and aux is None
    assert torch.isfinite(out).all()
    out.pow(2).mean().backward()
    for name, param in mixer.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("filename", BASELINES)
def test_baseline_output_does_not_depend_on_later_tokens(filename):
    mixer = build(filename, torch.float64)
    x = torch.randn(2, 37, 32, dtype=torch.float64)
    t = 20
    perturbed = x.clone()
    perturbed[:, t + 1 :] += torch.randn_like(perturbed[:, t + 1 :])
    with torch.no_grad():
        before, _ = call_mixer(mixer, x)
        after, _ = call_mixer(mixer, perturbed)
    torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1], atol=1e-12, rtol=0)
    assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])


@pytest.mark.parametrize("filename", BASELINES)
def test_baseline_accepts_hidden_size_in_place_of_d_model(filename):
    cls = load_mixer_class(BASELINE_DIR / filename)
    mixer = cls(hidden_size=24, num_heads=3, layer_idx=1)
    out, _ = call_mixer(mixer, torch.randn(1, 5, 24))
    assert out.shape == (1, 5, 24)


@pytest.mark.parametrize("filename", BASELINES)
def test_baseline_runs_inside_the_backbone(filename):
    cls = load_mixer_class(BASELINE_DIR / filename)
    model = Backbone(cls, ModelSpec(d_model=32, n_layers=2, num_heads=2), vocab_size=50)
    logits, aux = model(torch.randint(0, 50, (2, 37)))
    assert logits.shape == (2, 37, 50) and aux is None
    assert torch.isfinite(logits).all()
