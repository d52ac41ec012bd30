"""Stopping rules: each one stops at the right point on synthetic scores (target fitness on the
posterior lower bound, patience on the posterior best, CPU-hours on the supervisor's CPU seconds), a
real smoke study stops on its compute budget with the reason recorded and printed, and bad or
contradictory rules are one line, exit 2, with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from archscout.loop import Loop
from archscout.records import RunResult
from archscout.stopping import StopRules, Stopper
from archscout.store import ladder as ladder_store
from archscout.study import open_study


def _run(seed: int, val_loss: float, bench: float, cpu_s: float = 1.0) -> RunResult:
    return RunResult(candidate_hash="synthetic", preset="smoke", seed=seed, status="ok", val_loss=val_loss,
                     benchmark=bench, params=1000, trust={"cpu_s": cpu_s})


@pytest.fixture
def synthetic(tmp_path):
    """A smoke study with a baseline (seed sigma 0.02 on loss and benchmark) and 10 average candidates."""
    handle = open_study(tmp_path / "s", {"preset": "smoke", "novelty.backend": "bm25"})
    db = handle.db
    base = db.add_architecture("# baseline\n", name="deltanet", origin="baseline")
    for seed, (loss, bench) in enumerate([(5.00, 0.50), (5.02, 0.48), (4.98, 0.52)]):
        db.add_run(base, "explore", _run(seed, loss, bench))
    for i in range(10):
        db.add_run(db.add_architecture(f"# avg{i}\n", name=f"avg{i}", origin="offline"), "explore",
                   _run(0, 5.0 + 0.01 * (i - 5), 0.5 - 0.01 * (i - 5)))
    yield handle
    handle.close()


def _add(handle, name: str, runs: list[tuple[float, float]]) -> int:
    arch = handle.db.add_architecture(f"# {name}\n", name=name, origin="offline")
    for seed, (loss, bench) in enumerate(runs):
        handle.db.add_run(arch, "explore" if seed == 0 else "promote", _run(seed, loss, bench))
    return arch


def test_target_fitness_needs_the_posterior_lower_bound(synthetic):
    loop = Loop(synthetic)
    stopper = Stopper(loop, StopRules(target_fitness=0.6))
    _add(synthetic, "lucky", [(4.94, 0.56)])  # one run 3 sigma up: its interval is wide
    assert not stopper.check()
    _add(synthetic, "solid", [(4.95, 0.55)] * 6)  # six runs agree
    assert stopper.check() and stopper.rule == "target_fitness"
    assert ladder_store.last_stop(synthetic.db)["rule"] == "target_fitness"


def _experiment(handle, name: str, runs: list[tuple[float, float]]) -> int:
    """One finished experiment whose candidate has these runs (stored after it started)."""
    exp = handle.db.experiments.start(proposer="offline")
    arch = _add(handle, name, runs)
    for state in ("proposed", "checked", "evaluated", "scored", "analyzed", "done"):
        handle.db.experiments.advance(exp.id, state, architecture_id=arch)
    return arch


def test_patience_counts_experiments_without_a_better_posterior_best(synthetic):
    loop = Loop(synthetic)
    stopper = Stopper(loop, StopRules(patience=2))
    assert not stopper.check()  # sets the best
    _experiment(synthetic, "better", [(4.96, 0.54)] * 3)
    assert not stopper.check()  # improved: counter back to 0
    _experiment(synthetic, "worse1", [(5.03, 0.47)])
    assert not stopper.check() and stopper.since == 1
    _experiment(synthetic, "worse2", [(5.03, 0.47)])
    assert stopper.check() and stopper.rule == "patience"
    assert "after experiment 1" in stopper.reason


def test_patience_on_resume_counts_from_the_studys_history(synthetic):
    """A new Stopper (a resumed `run`) replays the experiments before it: the best rose at
    experiment 1 and two experiments followed without improving, so patience 2 stops at once and
    patience 3 after one more experiment that does not improve."""
    _experiment(synthetic, "better", [(4.96, 0.54)] * 3)
    _experiment(synthetic, "worse1", [(5.03, 0.47)])
    _experiment(synthetic, "worse2", [(5.03, 0.47)])
    loop = Loop(synthetic)
    resumed = Stopper(loop, StopRules(patience=2))
    assert resumed.check() and resumed.rule == "patience" and resumed.best_at == 1 and resumed.since == 2
    resumed = Stopper(loop, StopRules(patience=3))
    assert not resumed.check() and resumed.since == 2
    _experiment(synthetic, "worse3", [(5.03, 0.47)])
    assert resumed.check() and resumed.since == 3
    # a later improvement resets it, replayed or live
    _experiment(synthetic, "best", [(4.94, 0.56)] * 4)
    assert not Stopper(loop, StopRules(patience=3)).check()


def test_cpu_hours_sum_the_supervisors_cpu_seconds(synthetic):
    loop = Loop(synthetic)
    # 3 baseline + 10 candidate runs at 1 CPU-s each = 13 s
    assert not Stopper(loop, StopRules(cpu_hours=14 / 3600)).check()
    stopper = Stopper(loop, StopRules(cpu_hours=13 / 3600))
    assert stopper.check() and stopper.rule == "cpu_hours" and stopper.out_of_compute()


@pytest.mark.timeout(600)
def test_a_study_stops_on_its_compute_budget_and_says_why(tmp_path):
    folder = tmp_path / "study"
    cmd = [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), "--budget", "5",
           "--cpu-hours", "0.0001", "--set", "preset=smoke", "--set", "baseline_seeds=2",
           "--set", "novelty.backend=bm25"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "compute budget" in out.stderr
    status = json.loads(subprocess.run([sys.executable, "-m", "archscout.cli", "status", "--study", str(folder),
                                        "--json"], capture_output=True, text=True, check=True).stdout)
    # the baseline alone used more than 0.36 CPU-seconds: no experiment was started
    assert status["experiments"]["total"] == 0
    assert status["ladder"]["stop"]["rule"] == "cpu_hours"


@pytest.mark.parametrize("args, option", [
    (["--target-fitness", "1.5"], "--target-fitness"),
    (["--patience", "0"], "--patience"),
    (["--budget", "3", "--patience", "5"], "--patience"),
    (["--cpu-hours", "-1"], "--cpu-hours"),
])
def test_bad_stopping_rules_are_one_line_exit_2_and_write_nothing(tmp_path, args, option):
    folder = tmp_path / "study"
    out = subprocess.run([sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and option in lines[0], out.stderr
    assert not folder.exists()


def _best_now(folder) -> float | None:
    """The posterior best as a check right now reads it (the live path, not the replay)."""
    from archscout.analyze.posterior import posteriors_from_db

    handle = open_study(folder, create=False)
    try:
        base = {a.id for a in handle.db.architectures_by_origin("baseline")}
        posts = posteriors_from_db(handle.db, handle.config.rungs(), handle.config.fitness)[0]
        return max((p.mean for a, p in posts.items() if a not in base), default=None)
    finally:
        handle.close()


@pytest.mark.timeout(1500)
def test_a_killed_and_resumed_study_stops_where_its_history_says(tmp_path):
    """A real smoke study grown one experiment at a time, each `run` SIGKILLed while scoring its new
    experiment (its run is stored) and then finished by a plain `run`, until the posterior best has
    not risen for at least one experiment. Resumed from the last kill with `--patience` equal to that
    count, it must stop at its first check, before starting any experiment; counting from the resume
    it would run `patience` more."""
    folder = tmp_path / "study"
    env = {k: v for k, v in os.environ.items() if k != "ARCHSCOUT_FAULT"}
    cmd = [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), "--set", "preset=smoke",
           "--set", "baseline_seeds=2", "--set", "novelty.backend=bm25"]

    def experiments() -> int:
        handle = open_study(folder, create=False)
        try:
            return sum(handle.db.experiments.counts_by_state().values())
        finally:
            handle.close()

    bests: list[float | None] = [None]  # what the check before experiment k+1 reads, k = 0, 1, ...
    for n in range(1, 9):
        out = subprocess.run(cmd + ["--budget", str(n)], env={**env, "ARCHSCOUT_FAULT": "commit:scored"},
                             capture_output=True, text=True, timeout=600)
        # a candidate that fails before scoring ends its experiment without reaching the kill point
        assert out.returncode in (0, -9), out.stderr[-2000:]
        assert experiments() == n
        bests.append(_best_now(folder))
        best_at, best = 0, None
        for k, b in enumerate(bests):
            if b is not None and (best is None or b > best):
                best_at, best = k, b
        since = n - best_at
        if out.returncode == -9 and best is not None and since >= 1:
            break
        # finish the killed experiment (the fault would fire again when its scoring is resumed)
        done = subprocess.run(cmd + ["--budget", str(n)], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    else:
        pytest.fail(f"no kill left the posterior best unimproved in 8 experiments: {bests}")
    out = subprocess.run(cmd + ["--budget", str(n + since + 1), "--patience", str(since)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "patience" in out.stderr, out.stderr[-2000:]
    handle = open_study(folder, create=False)
    try:
        counts = handle.db.experiments.counts_by_state()
        assert sum(counts.values()) == n, counts  # no experiment started after the resume
        assert counts.get("done", 0) + counts.get("failed", 0) == n  # the killed one was finished
        stop = ladder_store.last_stop(handle.db)
        assert stop["rule"] == "patience" and stop["experiments"] == n
        assert f"after experiment {best_at}" in stop["reason"]
    finally:
        handle.close()


def test_the_replayed_best_is_the_live_best_at_each_cut(synthetic):
    """best_history at a cut equals the live posterior best of the runs stored before it."""
    from datetime import datetime, timezone

    from archscout.analyze.posterior import best_history, posteriors_from_db

    db, cfg = synthetic.db, synthetic.config

    def live() -> float:
        base = {a.id for a in db.architectures_by_origin("baseline")}
        return max(p.mean for a, p in posteriors_from_db(db, cfg.rungs(), cfg.fitness)[0].items() if a not in base)

    before = live()
    cut = datetime.now(timezone.utc)
    _add(synthetic, "better", [(4.95, 0.55)] * 3)
    after = live()
    assert after > before
    assert best_history(db, cfg.rungs(), cfg.fitness, [cut, datetime.now(timezone.utc)]) == [before, after]
