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


def test_the_fitness_with_the_ar_hit_loss_term_ranks_by_ar_hits_where_val_loss_disagrees():
    from archscout.calibration.summary import groups_by_metric

    def seeds(val, ar):
        runs = []
        for seed, (v, a) in enumerate(zip(val, ar)):
            r = lm_run(ar_hit_loss=a, other_loss=v, ar_hits=600)
            r.seed, r.val_loss = seed, v
            runs.append(r)
        return runs

    # the floor: val loss 5 σ better than the baseline, AR hits 3 σ worse
    results = {"deltanet": seeds([5.30, 5.32, 5.31], [3.60, 3.62, 3.61]),
               "floor": seeds([5.26, 5.27, 5.25], [3.64, 3.65, 3.63])}
    g = groups_by_metric(results, "deltanet")
    mean = {m: {k: sum(v) / len(v) for k, v in g[m].items()} for m in ("fitness_seed_sigma", "fitness_ar", "fitness_lm_mean")}
    assert mean["fitness_seed_sigma"]["floor"] > mean["fitness_seed_sigma"]["deltanet"]
    assert mean["fitness_ar"]["floor"] < mean["fitness_ar"]["deltanet"]
    assert mean["fitness_ar"]["floor"] < mean["fitness_lm_mean"]["floor"] < mean["fitness_seed_sigma"]["floor"]
