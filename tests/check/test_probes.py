"""The probes pass a sound causal mixer and catch each kind of broken one, without raising."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archscout.check.probes as probes_module
from archscout.check.probes import first_fatal, run_probes
from archscout.config import ProbeSpec
from archscout.records import FailureKind
from archscout.space.contract import load_mixer_class

BASELINES = Path(probes_module.__file__).parents[1] / "space" / "baselines"
# tests that are not about timing keep the complexity probe short
FAST = ProbeSpec(complexity_len=64)


class CumMean(nn.Module):
    """Causal running mean of a projection, with dropout so train-mode comparisons are exercised."""

    def __init__(self, d_model: int = 64, num_heads: int = 4, layer_idx: int | None = None, **kwargs):
        super().__init__()
        self.in_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(0.1)

    def mix(self, v: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(1, v.shape[1] + 1, dtype=v.dtype).view(1, -1, 1)
        return v.cumsum(dim=1) / steps

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        v = self.dropout(self.in_proj(hidden_states))
        return self.out_proj(self.mix(v)), None, past_key_values


class ReverseCumsum(CumMean):
    def mix(self, v):
        return v.flip(1).cumsum(1).flip(1)


class ChunkSum(CumMean):
    """Full (non-causal) mixing inside blocks of 8 positions: leaks only within a block."""

    def mix(self, v):
        b, t, d = v.shape
        return v.view(b, t // 8, 8, d).sum(2, keepdim=True).expand(b, t // 8, 8, d).reshape(b, t, d)


class TrainBatchNorm(CumMean):
    """Causal in eval mode; in train mode BatchNorm normalises over every sample and position."""

    def __init__(self, d_model: int = 64, **kwargs):
        super().__init__(d_model, **kwargs)
        self.norm = nn.BatchNorm1d(d_model)

    def mix(self, v):
        return super().mix(self.norm(v.transpose(1, 2)).transpose(1, 2))


class BatchMeanCentred(CumMean):
    def mix(self, v):
        return super().mix(v - v.mean(dim=0, keepdim=True))


class SoftmaxAttention(CumMean):
    """Causal softmax attention with the full L x L score matrix materialised."""

    def __init__(self, d_model: int = 64, num_heads: int = 4, **kwargs):
        super().__init__(d_model, num_heads, **kwargs)
        self.num_heads = num_heads
        self.qk = nn.Linear(d_model, 2 * d_model)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        b, t, d = hidden_states.shape
        h = self.num_heads
        q, k = self.qk(hidden_states).view(b, t, 2, h, d // h).permute(2, 0, 3, 1, 4)  # [B, H, T, K] x2
        v = self.in_proj(hidden_states).view(b, t, h, d // h).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)  # [B, H, T, T]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        attn = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        return self.out_proj((attn @ v).transpose(1, 2).reshape(b, t, d)), None, past_key_values


class UnusedParam(CumMean):
    def __init__(self, d_model: int = 64, **kwargs):
        super().__init__(d_model, **kwargs)
        self.forgotten_gate = nn.Parameter(torch.zeros(d_model))


class ProducesNaN(CumMean):
    def mix(self, v):
        return super().mix(v) * float("nan")


class Oversized(CumMean):
    def __init__(self, d_model: int = 64, **kwargs):
        super().__init__(d_model, **kwargs)
        self.wide = nn.Linear(d_model, 64 * d_model)

    def mix(self, v):
        return super().mix(v) + 0.0 * self.wide(v).mean()


class InitRaises(CumMean):
    def __init__(self, d_model: int = 64, **kwargs):
        raise ValueError("head_dim must be even")


class WrongShape(CumMean):
    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        return hidden_states[..., : hidden_states.shape[-1] // 2]


class ForwardRaises(CumMean):
    def mix(self, v):
        raise RuntimeError("shape mismatch in the delta rule")


class Float32Only(CumMean):
    """Creates a float32 weight inside forward, so it cannot run in float64."""

    def mix(self, v):
        eye = torch.eye(v.shape[-1], dtype=torch.float32)
        return super().mix(F.linear(v, eye))


class SlowForward(CumMean):
    """Sleeps only at the complexity probe's lengths, so the other probes stay quick."""

    def mix(self, v):
        if v.shape[1] >= 64:
            time.sleep(0.05)
        return super().mix(v)


class CrashesInEval(CumMean):
    def mix(self, v):
        if not self.training:
            raise RuntimeError("eval path not implemented")
        return super().mix(v)


class ExitsInInit(CumMean):
    def __init__(self, d_model: int = 64, **kwargs):
        sys.exit(3)


def by_name(reports):
    return {r.name: r for r in reports}


def test_causal_mixer_passes_every_probe():
    reports = by_name(run_probes(CumMean, ProbeSpec()))
    assert list(reports) == list(probes_module.PROBE_ORDER)
    failed = {name: r.reason for name, r in reports.items() if not r.passed}
    assert failed == {}
    assert reports["causality"].details["dtype"] == "float64"
    assert reports["causality"].details["max_diff"] <= ProbeSpec().atol
    assert reports["param_budget"].details["params"] == 2 * (64 * 64 + 64)
    assert reports["complexity"].details["time_ratio"] < ProbeSpec().quadratic_ratio
    # two Linear layers: exactly linear in L, when the timing made the probe count FLOPs at all
    assert reports["complexity"].details["flop_ratio"] in (None, 4.0)
    assert first_fatal(list(reports.values())) is None


def test_reverse_cumsum_leak_is_caught_at_position_zero():
    reports = run_probes(ReverseCumsum, FAST)
    causality = by_name(reports)["causality"]
    assert not causality.passed
    assert causality.details["first_leak_position"] == 0
    assert first_fatal(reports)[0] is FailureKind.leak


def test_leak_inside_a_chunk_is_caught():
    causality = by_name(run_probes(ChunkSum, FAST))["causality"]
    assert not causality.passed
    assert causality.details["cut"] == 0 and causality.details["first_leak_position"] == 0


def test_train_mode_batch_statistics_leak_and_mix_the_batch():
    reports = by_name(run_probes(TrainBatchNorm, FAST))
    assert not reports["causality"].passed
    assert reports["causality"].details["mode"] == "train"
    assert not reports["batch_independence"].passed
    assert reports["batch_independence"].details["mode"] == "train"


def test_batch_mean_subtraction_is_caught_as_batch_mixing():
    reports = run_probes(BatchMeanCentred, FAST)
    named = by_name(reports)
    # the batch mean at a position uses no future tokens, so only the batch probe fires
    assert named["causality"].passed
    assert not named["batch_independence"].passed
    assert first_fatal(reports)[0] is FailureKind.batch_mixing


def test_materialised_softmax_attention_is_flagged_quadratic_but_fatal_only_when_configured():
    # at the default L=256 -> 1024 the two L x L matmuls take the FLOPs from 8.4M + 16.8M to
    # 33.6M + 268M, a ratio of 12.0 whatever the machine's load (time grows ~25x, but noisily)
    spec = ProbeSpec()
    reports = run_probes(SoftmaxAttention, spec)
    complexity = by_name(reports)["complexity"]
    assert not complexity.passed, complexity.details
    assert complexity.details["flop_ratio"] == 12.0
    assert {"short_ms", "long_ms", "time_ratio", "short_flops", "long_flops"} <= set(complexity.details)
    assert "FLOPs grow 12.0x" in complexity.reason
    assert first_fatal(reports) is None
    assert all(r.passed for r in reports if r.name != "complexity")

    fatal_spec = spec.model_copy(update={"quadratic_fatal": True})
    complexity = by_name(run_probes(SoftmaxAttention, fatal_spec))["complexity"]
    assert first_fatal([complexity])[0] is FailureKind.quadratic


def test_slow_forward_is_flagged_without_waiting_for_the_long_run(monkeypatch):
    monkeypatch.setattr(probes_module, "MAX_FORWARD_S", 0.1)
    spec = ProbeSpec(seq_len=32, complexity_len=64, quadratic_fatal=True)
    reports = run_probes(SlowForward, spec)
    complexity = by_name(reports)["complexity"]
    assert not complexity.passed
    assert "would exceed" in complexity.reason
    # flagged from the short forward alone: the 4L forward never ran (no long timing recorded)
    assert "short_wall_ms" in complexity.details and "long_wall_ms" not in complexity.details
    assert "long_ms" not in complexity.details
    assert first_fatal(reports)[0] is FailureKind.quadratic


def test_unused_parameter_is_flagged_by_name_as_a_warning_not_a_failure():
    reports = run_probes(UnusedParam, FAST)
    gradients = by_name(reports)["gradients"]
    assert not gradients.passed
    assert gradients.details["unused"] == ["forgotten_gate"]
    assert gradients.details["fatal"] is False
    assert gradients.details["unused_params"] > 0
    assert "forgotten_gate" in gradients.reason
    assert first_fatal(reports) is None


class StepCounter(CumMean):
    """Causal, but every forward advances a counter that scales the output (an annealing schedule)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("step", torch.zeros(()))

    def forward(self, hidden_states, **kwargs):
        self.step += 1
        o, aux, cache = super().forward(hidden_states, **kwargs)
        return o * (1 + 1e-3 * self.step), aux, cache


class StepCounterLeaky(StepCounter):
    """The same counter, and a real leak: position 0 sees the last token."""

    def mix(self, v):
        return super().mix(v) + v[:, -1:]


_CALLS = [0]


class GlobalRandom(CumMean):
    """Output depends on a counter outside the module: a fresh copy does not reset it."""

    def forward(self, hidden_states, **kwargs):
        _CALLS[0] += 1
        o, aux, cache = super().forward(hidden_states, **kwargs)
        return o + 1e-3 * _CALLS[0], aux, cache


def test_a_step_counter_is_stateful_but_judged_causal_with_the_state_reset():
    reports = run_probes(StepCounter, FAST)
    named = by_name(reports)
    assert not named["stateful"].passed
    assert named["stateful"].details["state_reset"] is True
    assert named["stateful"].details["rerun_diff"] > 0
    assert named["causality"].passed and named["causality"].details["state_reset"] is True
    assert named["batch_independence"].passed
    assert first_fatal(reports) is None


def test_a_stateful_forward_that_leaks_is_still_a_leak():
    reports = run_probes(StepCounterLeaky, FAST)
    assert not by_name(reports)["causality"].passed
    assert first_fatal(reports)[0] is FailureKind.leak


def test_a_forward_that_differs_from_the_same_state_is_nondeterministic_and_fails():
    reports = run_probes(GlobalRandom, FAST)
    named = by_name(reports)
    assert not named["stateful"].passed
    assert "causality" not in named
    assert first_fatal(reports)[0] is FailureKind.nondeterministic


def test_a_pure_forward_passes_the_stateful_probe():
    named = by_name(run_probes(CumMean, FAST))
    assert named["stateful"].passed and named["stateful"].details["rerun_diff"] == 0.0
    assert named["causality"].details["state_reset"] is False


def test_nan_output_fails_finite_and_finite_grad():
    reports = run_probes(ProducesNaN, FAST)
    named = by_name(reports)
    assert not named["finite"].passed
    assert not named["finite_grad"].passed
    assert first_fatal(reports) == (FailureKind.nan, f"finite probe: {named['finite'].reason}")


def test_oversized_mixer_fails_param_budget():
    baseline = 2 * (64 * 64 + 64)
    reports = run_probes(Oversized, FAST, baseline_params=baseline)
    budget = by_name(reports)["param_budget"]
    assert not budget.passed
    assert budget.details["ratio"] > FAST.param_ratio
    assert first_fatal(reports)[0] is FailureKind.param_budget
    assert by_name(run_probes(CumMean, FAST, baseline_params=baseline))["param_budget"].passed


@pytest.mark.parametrize(
    ("cls", "message"), [(InitRaises, "head_dim must be even"), (ExitsInInit, "SystemExit")]
)
def test_init_error_becomes_a_report_not_an_exception(cls, message):
    reports = run_probes(cls, FAST)
    assert [r.name for r in reports] == ["contract"]
    assert message in reports[0].reason
    assert first_fatal(reports)[0] is FailureKind.init_error


def test_wrong_output_shape_fails_contract_and_stops():
    reports = run_probes(WrongShape, FAST)
    assert [r.name for r in reports] == ["contract"]
    assert "shape" in reports[0].reason
    assert first_fatal(reports)[0] is FailureKind.contract


def test_forward_error_is_classified():
    reports = run_probes(ForwardRaises, FAST)
    assert not reports[0].passed
    assert first_fatal(reports)[0] is FailureKind.forward_error
    assert "delta rule" in reports[0].details["log_tail"]


def test_error_in_a_later_probe_fails_that_probe_with_its_kind():
    reports = by_name(run_probes(CrashesInEval, FAST))
    assert reports["contract"].passed
    causality = reports["causality"]
    assert not causality.passed and "eval path not implemented" in causality.reason
    assert first_fatal(list(reports.values()))[0] is FailureKind.forward_error


def test_float32_only_mixer_falls_back_to_float32_for_the_exact_probes():
    reports = by_name(run_probes(Float32Only, FAST))
    assert reports["causality"].passed and reports["batch_independence"].passed
    assert reports["causality"].details["dtype"] == "float32"
    assert torch.get_default_dtype() == torch.float32


def test_probes_are_deterministic_and_leave_the_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = run_probes(ReverseCumsum, FAST)
    assert torch.equal(torch.rand(3), expected)
    second = run_probes(ReverseCumsum, FAST)
    for a, b in zip(first, second, strict=True):
        if a.name != "complexity":
            assert a.details == b.details


def test_candidate_file_loaded_through_the_contract(tmp_path):
    source = Path(__file__).read_text().split("class ReverseCumsum")[0].split("class CumMean")[1]
    path = tmp_path / "candidate.py"
    path.write_text("import torch\nfrom torch import nn\n\n\nclass CumMean" + source)
    cls = load_mixer_class(path)
    assert first_fatal(run_probes(cls, FAST)) is None


BASELINE_FILES = sorted(p for p in BASELINES.glob("*.py") if not p.name.startswith("_"))
QUADRATIC_BASELINES = {"softmax_attention"}


@pytest.mark.skipif(not BASELINE_FILES, reason="no baseline mixers in archscout/space/baselines yet")
@pytest.mark.parametrize("path", BASELINE_FILES, ids=lambda p: p.stem)
def test_every_baseline_passes_all_fatal_probes(path):
    spec = ProbeSpec()
    reports = run_probes(load_mixer_class(path), spec)
    assert first_fatal(reports) is None, [r for r in reports if not r.passed]
    # the probes' time per baseline (~1 s idle) is printed by benchmarks/timings.py
    assert all(r.passed for r in reports if r.name != "complexity")
    complexity = by_name(reports)["complexity"]
    if path.stem in QUADRATIC_BASELINES:
        # the quadratic reference is reported, never fatal; its L^2 term shows in the FLOPs (12.0x
        # at L=256 -> 1024), which requires counting the fused CPU attention kernel at all, while
        # its time still grows only ~5x there
        assert not complexity.passed
        assert complexity.details["fatal"] is False
        assert complexity.details["flop_ratio"] > spec.quadratic_ratio
    else:
        # chunkwise linear mixers: the FLOPs grow exactly 4x (counted only if the timing asked)
        assert complexity.passed, complexity.reason
        assert complexity.details["flop_ratio"] in (None, 4.0)
        assert complexity.details["time_ratio"] <= spec.quadratic_ratio
