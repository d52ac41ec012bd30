"""Stopping rules: each one stops at the right point on synthetic scores (target fitness on the
posterior lower bound, patience on the posterior best, CPU-hours on the supervisor's CPU seconds), a
real smoke study stops on its compute budget with the reason recorded and printed, and bad or
contradictory rules are one line, exit 2, with nothing written."""

from __future__ import annotations

import json
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


def test_patience_counts_experiments_without_a_better_posterior_best(synthetic):
    loop = Loop(synthetic)
    stopper = Stopper(loop, StopRules(patience=2))
    assert not stopper.check()  # sets the best
    _add(synthetic, "better", [(4.96, 0.54)] * 3)
    assert not stopper.check()  # improved: counter back to 0
    _add(synthetic, "worse1", [(5.03, 0.47)])
    assert not stopper.check()  # 1 without improvement
    _add(synthetic, "worse2", [(5.03, 0.47)])
    assert stopper.check() and stopper.rule == "patience"


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
