"""Which metrics the calibration summary takes from a run (calibration/summary.py `run_metrics`):
the LM's AR-hit / other loss split next to the val loss, and runs stored before the split existed."""

from __future__ import annotations

from archscout.calibration.summary import lower_is_better, run_metrics
from archscout.records import RunResult, TaskResult


def lm_run(**lm_fields) -> RunResult:
    lm = TaskResult(name="lm", kind="lm", steps_done=1, steps_planned=1, params=1, val_loss=5.0, **lm_fields)
    return RunResult(candidate_hash="c", preset="nano", seed=0, status="ok", val_loss=5.0, tasks={"lm": lm},
                     ar_hit_loss=lm_fields.get("ar_hit_loss"))


def test_the_ar_hit_and_other_losses_are_calibration_metrics_where_lower_is_better():
    m = run_metrics(lm_run(ar_hit_loss=3.5, other_loss=5.1, ar_hits=600))
    assert (m["val_loss"], m["ar_hit_loss"], m["other_loss"]) == (5.0, 3.5, 5.1)
    assert all(lower_is_better(k) for k in ("val_loss", "ar_hit_loss", "other_loss"))
    assert not lower_is_better("fitness_ar") and not lower_is_better("benchmark")


def test_a_run_stored_before_the_split_still_loads_and_lacks_only_those_metrics():
    old = lm_run().model_dump()
    for key in ("ar_hit_loss", "other_loss", "ar_hits"):
        old["tasks"]["lm"].pop(key)
    old.pop("ar_hit_loss")
    loaded = RunResult.model_validate(old)
    assert loaded.ar_hit_loss is None and loaded.tasks["lm"].ar_hits is None
    assert set(run_metrics(loaded)) == {"val_loss"}
