"""Candidates that try to fake their score (tests/evaluate/cheats/, one cheat class each), evaluated
for real at the smoke preset in the sandbox: each ends in `leak`, `invalid_result`, or a fitness no
higher than an honest control's; the honest gated control passes. CI runs this file under both
isolation levels (ARCHSCOUT_SANDBOX=fallback for the second); the verdicts must not depend on it.

Fitness here leaves the judge out (FitnessConfig(judge="llm") with no judge score): the judge's
throughput part is wall-clock and noisy, the loss and benchmark terms are what a cheat fakes.
The class the checks cannot see (remember_inputs.py) is covered by tests/test_quarantine.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archscout.analyze.fitness import FitnessConfig, baseline_ref_from_runs, compute_fitness
from archscout.config import get_preset
from archscout.evaluate.runner import evaluate
from archscout.quarantine import assess
from archscout.space import baseline_path

CHEATS = Path(__file__).parent / "cheats"
NO_JUDGE = FitnessConfig(judge="llm")
# file -> the verdict archscout must give
VERDICTS = {
    "leak_not_float64": "leak",
    "leak_big_batch": "leak",
    "leak_train_length": "leak",
    "leak_stack": "leak",
    "zero_gate": "leak",
    "leak_grad_mode": "not_above_control",  # leaks only while training: the scored calls pay for it
    "gc_steps": "invalid_result",
    "patch_cross_entropy": "not_above_control",
    "atexit_rewrite": "not_above_control",
}


@pytest.fixture(scope="module")
def preset():
    return get_preset("smoke")


@pytest.fixture(scope="module")
def control(preset, tmp_path_factory):
    """Linear attention, honest: the reference every cheat is compared with."""
    result = evaluate(baseline_path("linear_attention"), preset, 0)
    assert result.ok, result.failure
    return result


def _fitness(result, control) -> float:
    return compute_fitness(result, baseline_ref_from_runs([control]), NO_JUDGE).fitness


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_cheat_gets_its_verdict(name, preset, control):
    result = evaluate(CHEATS / f"{name}.py", preset, 0)
    expected = VERDICTS[name]
    if expected == "not_above_control":
        assert result.ok, result.failure
        assert result.trust["scored_by"] == "parent" and result.trust["causality_checks"] > 0
        assert _fitness(result, control) <= _fitness(control, control) + 1e-9
        assert not assess(result, baseline_ref_from_runs([control]))
    else:
        assert not result.ok and result.failure.kind.value == expected, result.failure
    if expected == "leak":
        # found on the trained weights, with the evidence
        assert "trained-weights causality" in result.failure.message
        assert "position" in result.failure.message


@pytest.mark.timeout(300)
def test_the_atexit_rewrite_changes_nothing_scored(preset, control):
    result = evaluate(CHEATS / "atexit_rewrite.py", preset, 0)
    assert result.ok
    assert result.val_loss == control.val_loss and result.benchmark == control.benchmark
    assert result.params == control.params and result.tokens_per_s < 1e12


@pytest.mark.timeout(300)
def test_an_honest_gate_learned_from_zero_passes(preset, control):
    result = evaluate(CHEATS / "honest_gate.py", preset, 0)
    assert result.ok, result.failure
    assert result.trust["causality_checks"] >= 12 and result.trust["max_prefix_rel_diff"] <= 1e-4
    assert result.trust["cpu_s"] > 0 and result.trust["cpu_s_per_step"] > 0
    # the parent's numbers: a loss curve per evaluation round and the final values
    assert [p.step for p in result.tasks["lm"].eval_curve] == [6, 12]
    assert result.val_loss == result.tasks["lm"].eval_curve[-1].value
    assert not assess(result, baseline_ref_from_runs([control]))
