"""Determinism: the same (candidate, preset, seed) gives bit-identical scored numbers in two separate
sandboxed training runs, at the preset's thread count (1 at `smoke`) and with two threads.

The numbers compared are the ones the parent computes (evaluate/scoring.py) from the child's logits:
val loss, accuracies, accuracy AUC, benchmark, step counts, every curve point, parameter counts.
Both runs share the cache, hence the held-out key the synthetic test sets are drawn from (a fresh
cache draws a new key: see benchmarks/determinism.py for that spread)."""

from __future__ import annotations

import pytest

from archscout.calibration.determinism import scored_numbers, spread
from archscout.config import get_preset
from archscout.evaluate.runner import evaluate
from archscout.space import baseline_path

SMOKE = get_preset("smoke")


def _numbers(preset, seed):
    result = evaluate(baseline_path("deltanet"), preset, seed=seed)
    assert result.ok, result.failure
    return scored_numbers(result)


@pytest.mark.parametrize("threads", [SMOKE.num_threads, 2], ids=["preset-threads", "2-threads"])
def test_same_candidate_preset_seed_gives_identical_scored_numbers(threads):
    preset = SMOKE.model_copy(update={"num_threads": threads})
    a = _numbers(preset, seed=5)
    b = _numbers(preset, seed=5)
    # every scored figure is there, so the comparison is not vacuous
    for key in ("val_loss", "benchmark", "lm.val_loss", "mqar.accuracy", "mqar.accuracy_auc", "lm.steps_done"):
        assert key in a, key
    assert a["lm.steps_done"] == SMOKE.lm_task.optim.steps
    assert any("train_curve@" in k for k in a) and any("eval_curve@" in k for k in a)
    moved = {k: v for k, v in spread([a, b]).items() if v != 0}
    assert not moved, f"numbers differ between two identical runs: {moved}"
    assert a == b


def test_another_seed_changes_the_numbers():
    # guards the test above: the comparison must be able to see a difference
    a = _numbers(SMOKE, seed=5)
    c = _numbers(SMOKE, seed=6)
    assert a["val_loss"] != c["val_loss"]
    assert a["lm.train_curve@1"] != c["lm.train_curve@1"]
