"""The training monitor's stop rules, the learning-rate schedule, and bf16 autocast training."""

from __future__ import annotations

import math

import pytest
import torch

from archscout.config import MonitorSpec, get_preset
from archscout.evaluate.tasks import default_cache_dir, prepare
from archscout.evaluate.train import Monitor, MonitorStop, TaskReference, lr_at, train_task
from archscout.records import CurvePoint, FailureKind
from archscout.space import baseline_path
from archscout.space.contract import load_mixer_class

REFERENCE = TaskReference(
    train_curve=[CurvePoint(step=s, value=6.0 - 0.01 * s) for s in range(0, 100, 10)], step_time_s=0.1
)


def _monitor(reference=REFERENCE) -> Monitor:
    return Monitor(MonitorSpec(), reference, warmup_steps=5)


def test_healthy_run_is_not_stopped():
    mon = _monitor()
    for step in range(60):
        mon.check(step, 6.0 - 0.012 * step, 0.1)


@pytest.mark.parametrize(
    "steps, kind",
    [
        ([(0, 6.0, 0.1), (1, math.nan, 0.1)], FailureKind.nan),
        ([(0, 6.0, 0.1), (1, math.inf, 0.1)], FailureKind.nan),
        # 4x the first loss after warm-up: diverged
        ([(0, 6.0, 0.1)] + [(s, 5.0, 0.1) for s in range(1, 6)] + [(6, 25.0, 0.1)], FailureKind.diverged),
        # below half of the baseline's loss at the same step, past leak_min_step: a leak signal
        ([(0, 6.0, 0.1), (30, 2.0, 0.1)], FailureKind.leak_suspect),
        # ten steps each > 10x the baseline's step time
        ([(s, 6.0, 1.5) for s in range(10)], FailureKind.too_slow),
    ],
)
def test_monitor_stops_with_the_reason(steps, kind):
    mon = _monitor()
    with pytest.raises(MonitorStop) as stop:
        for step, loss, seconds in steps:
            mon.check(step, loss, seconds)
    assert stop.value.kind == kind
    assert str(step) in stop.value.message


def test_fast_learning_on_a_synthetic_task_is_not_a_leak():
    # MQAR: the baseline may still sit on the recall plateau where a better candidate has left it
    mon = Monitor(MonitorSpec(), REFERENCE, warmup_steps=5, check_leak=False)
    mon.check(0, 6.0, 0.1)
    mon.check(30, 1.0, 0.1)


def test_without_a_reference_only_absolute_rules_apply():
    mon = _monitor(reference=None)
    mon.check(0, 6.0, 5.0)
    mon.check(30, 0.5, 5.0)  # no baseline curve: a low loss alone is not a leak
    with pytest.raises(MonitorStop):
        mon.check(31, math.nan, 5.0)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 100, 1e-2, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-3, rel=0.01)


def test_bf16_autocast_trains_a_baseline(tmp_path):
    # the GPU presets turn autocast on; the same code path runs (slowly) on CPU
    preset = get_preset("smoke").model_copy(update={"bf16_autocast": True})
    base = preset.lm_task
    spec = base.model_copy(update={"optim": base.optim.model_copy(update={"steps": 4}), "eval_every": 4, "eval_tokens": 512})
    prepare(spec, default_cache_dir())
    result = train_task(
        load_mixer_class(baseline_path("deltanet")), spec, preset, 0, default_cache_dir(), torch.device("cpu")
    )
    assert result.steps_done == spec.optim.steps
    assert math.isfinite(result.val_loss)


SLEEPY_MIXER = '''
import time
from torch import nn


class Sleepy(nn.Module):
    """Identity-like mixer whose forward waits, as a process descheduled by other work would."""

    def __init__(self, d_model=None, hidden_size=None, num_heads=4, layer_idx=None, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model or hidden_size, d_model or hidden_size)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False,
                output_attentions=False, **kwargs):
        time.sleep(0.3)
        return self.proj(hidden_states), None, past_key_values
'''


def test_waiting_steps_are_not_too_slow_because_the_monitor_counts_cpu_time(tmp_path):
    # every step takes > 0.3 s of wall clock, 30x the reference's 0.01 s, but almost no CPU: a busy
    # machine must not fail a candidate as too slow
    path = tmp_path / "sleepy.py"
    path.write_text(SLEEPY_MIXER)
    preset = get_preset("smoke")
    spec = preset.lm_task.model_copy(update={"optim": preset.lm_task.optim.model_copy(update={"steps": 12}), "eval_every": 12, "eval_tokens": 256})
    prepare(spec, default_cache_dir())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_task(load_mixer_class(path), spec, preset, 0, default_cache_dir(), torch.device("cpu"),
                            reference=TaskReference(step_time_s=0.01))
    finally:
        torch.set_num_threads(threads)
    assert result.steps_done == 12 and result.stopped is None
    assert result.step_time_s < 0.1 and result.wall_s > 12 * 0.3
