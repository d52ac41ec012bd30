"""posterior.run_fitness reads the study with set-based queries and remembers each run's fitness per
version of the run and of its scoring: its answer must equal the one-run-at-a-time definition after
every kind of change (a new run, a replaced run, a new baseline seed, a config change)."""

from __future__ import annotations

from archscout.analyze.fitness import FitnessConfig, baseline_ref_from_runs, compute_fitness
from archscout.analyze.posterior import SEARCH_STAGES, posteriors_from_db, run_fitness
from archscout.records import FailureKind, RunResult, failed_result
from archscout.store import open_study_db

RUNGS = ["smoke", "nano"]


def result(preset: str, seed: int, val_loss: float, bench: float = 0.5) -> RunResult:
    return RunResult(candidate_hash="h", preset=preset, seed=seed, status="ok", val_loss=val_loss, benchmark=bench,
                     params=1000, tokens_per_s=100.0, wall_s={"total": 1.0})


def one_at_a_time(db, config: FitnessConfig, baseline_id: int):
    """run_fitness as it read the study before: every candidate's runs with runs_for, scored afresh."""
    refs, base_fit = {}, {}
    for rung in RUNGS:
        runs = [r.result for r in db.runs_for(baseline_id, "explore", rung) if r.status == "ok"]
        if not runs:
            continue
        refs[rung] = baseline_ref_from_runs(runs)
        base_fit[rung] = [compute_fitness(r, refs[rung], config).fitness for r in runs]
    ids = sorted({i for rung in RUNGS for stage in SEARCH_STAGES for i in db.architectures_with_runs(stage, rung)})
    out = {}
    for arch_id in ids:
        if arch_id == baseline_id:
            continue
        obs = [(r.preset, compute_fitness(r.result, refs[r.preset], config).fitness) for r in db.runs_for(arch_id)
               if r.stage in SEARCH_STAGES and r.status == "ok" and r.preset in refs and r.val_loss is not None]
        if obs:
            out[arch_id] = obs
    return base_fit, out


def test_remembered_run_fitness_equals_scoring_every_run_afresh_after_each_change(tmp_path):
    db = open_study_db(tmp_path)
    try:
        base = db.add_architecture("base = 1", name="base", origin="baseline")
        db.add_run(base, "explore", result("smoke", 0, 3.0))
        db.add_run(base, "explore", result("smoke", 1, 3.1))
        a = db.add_architecture("a = 1", name="a", origin="offline", parent_id=base)
        b = db.add_architecture("b = 1", name="b", origin="offline", parent_id=base)
        db.add_run(a, "explore", result("smoke", 0, 2.9))
        db.add_run(a, "promote", result("smoke", 1, 2.95))
        db.add_run(a, "verify", result("smoke", 5, 1.0))  # the test, not the search
        db.add_run(b, "explore", failed_result(candidate_hash="h", preset="smoke", seed=0, kind=FailureKind.nan,
                                               message="nan"))
        config = FitnessConfig()

        def agree():
            got = run_fitness(db, None, RUNGS, config, base)
            assert got == one_at_a_time(db, config, base)
            return got

        first = agree()
        assert set(first[1]) == {a}
        db.add_run(b, "explore", result("smoke", 1, 3.2))  # a new run
        assert set(agree()[1]) == {a, b}
        db.add_run(a, "explore", result("smoke", 0, 2.5))  # a replaced run: same id, new result
        assert agree()[1][a][0] != first[1][a][0]
        db.add_run(base, "explore", result("smoke", 2, 2.8))  # a new baseline seed moves the reference
        agree()
        db.add_run(base, "explore", result("nano", 0, 3.5))  # a second rung gets its baseline
        db.add_run(a, "promote", result("nano", 0, 3.4))
        assert [rung for rung, _ in agree()[1][a]] == ["smoke", "nano", "smoke"]
        config = FitnessConfig(formula="asi-arch")  # another scoring of the same runs
        agree()
        # and the posterior built on it is the same whether remembered or not
        again = posteriors_from_db(db, RUNGS, config)
        assert posteriors_from_db(db, RUNGS, config) == again
    finally:
        db.close()
