"""Quarantine end to end at the smoke preset, on a real study database and real sandboxed runs.

The cheat that the trained-weights causality checks cannot see (tests/evaluate/cheats/
remember_inputs.py: it leaks the next token and replays remembered outputs so that perturbed
copies agree) must be quarantined by the loss rule: no fitness, never a parent or a reference,
never verified, shown by `status`, `show` and the dashboard; `archscout recheck` confirms it (two
fresh processes score the same batches differently). An honest file held by the same rule is
cleared by the re-check and then scored. The study lowers the loss rule to 3 % because at smoke
size (12 steps) the leak buys about 5 %; the rule's code is the same at every size.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from archscout import quarantine
from archscout.loop import Loop
from archscout.store import pool
from archscout.study import open_study
from archscout.summary import architecture, status
from archscout.verify import Verifier
from archscout.web.app import create_app

CHEATS = Path(__file__).parent / "evaluate" / "cheats"
CONFIG = {"preset": "smoke", "baseline": "linear_attention", "baseline_seeds": 2, "novelty.backend": "bm25",
          "budget": 0, "fitness.leak_threshold": 0.03}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archscout.cli", *args], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quarantine") / "study"
    handle = open_study(folder, CONFIG)
    loop = Loop(handle)
    cheat = loop.add_user_file(CHEATS / "remember_inputs.py")
    honest = loop.add_user_file(CHEATS / "honest_gate.py")
    ids = {"cheat": cheat.architecture_id, "honest": honest.architecture_id, "baseline": loop.baseline_id,
           "cheat_exp": cheat, "honest_exp": honest}
    handle.close()
    return folder, ids


@pytest.mark.timeout(900)
def test_a_cheat_the_checks_miss_is_quarantined_shown_and_confirmed_by_the_recheck(study):
    folder, ids = study
    exp, arch = ids["cheat_exp"], ids["cheat"]
    assert exp.state == "failed" and exp.failure_reason == "quarantined", (exp.failure_reason, exp.failure_message)
    assert ids["honest_exp"].state == "done"
    handle = open_study(folder, create=False)
    try:
        held = quarantine.entry(handle.db, arch, "smoke")
        assert held["state"] == "quarantined" and held["reason"].startswith("loss:")
        assert handle.db.score(arch, "explore", "smoke") is None  # no fitness
        assert [q["id"] for q in status(handle)["quarantine"]] == [arch]
        assert architecture(handle, arch)["quarantine"]["state"] == "quarantined"
    finally:
        handle.close()
    shown = _cli("show", str(arch), "--study", str(folder))
    assert shown.returncode == 0 and "QUARANTINED: loss:" in shown.stdout
    listed = _cli("status", "--study", str(folder))
    assert listed.returncode == 0 and "quarantine" in listed.stdout and "remember_inputs" in listed.stdout
    with TestClient(create_app(folder), base_url="http://127.0.0.1:8765") as client:
        page = client.get(f"/arch/{arch}")
        assert page.status_code == 200 and 'class="quarantine"' in page.text and "archscout recheck" in page.text

    checked = _cli("recheck", str(arch), "--study", str(folder), "--seeds", "1")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "confirmed" in checked.stdout and "two fresh processes" in checked.stdout
    handle = open_study(folder, create=False)
    try:
        assert quarantine.entry(handle.db, arch, "smoke")["state"] == "confirmed"
        assert handle.db.score(arch, "explore", "smoke") is None
    finally:
        handle.close()


@pytest.mark.timeout(900)
def test_a_quarantined_architecture_is_never_a_parent_a_reference_or_verified(study):
    folder, ids = study
    arch, base, honest = ids["cheat"], ids["baseline"], ids["honest"]
    handle = open_study(folder, create=False)
    try:
        db = handle.db
        # the worst case: a score from before its quarantine and a pool version that lists it first
        db.add_score(arch, "explore", "smoke", 0.999, {"note": "stale"}, None)
        db.save_pool_version([(arch, 0.999), (honest, 0.6), (base, 0.5)], experiments_seen=1000)
        if quarantine.entry(db, arch, "smoke")["state"] not in quarantine.HELD:
            quarantine.hold(db, arch, "smoke", ["test"])
        rng = random.Random(0)
        for selection in ("top", "random"):
            policy = pool.PoolPolicy(selection=selection, n_references=2)
            for _ in range(200):
                parent, refs = pool.sample(db, policy, rng, preset="smoke")
                assert parent != arch and arch not in refs
        assert arch not in Verifier(handle).targets(10)
        assert honest in Verifier(handle).targets(10)
    finally:
        handle.close()


@pytest.mark.timeout(900)
def test_the_recheck_clears_an_honest_architecture_and_scores_it(study):
    folder, ids = study
    handle = open_study(folder, create=False)
    try:
        arch = ids["honest"]
        fitness_before = handle.db.score(arch, "explore", "smoke").fitness
        # held by the rule as if its loss had looked too good: the re-check must let it go
        quarantine.hold(handle.db, arch, "smoke", ["loss: held for the test"])
        outcome = quarantine.recheck(handle, arch, seeds=1)
        assert outcome["state"] == "cleared", outcome["problems"]
        assert quarantine.entry(handle.db, arch, "smoke")["state"] == "cleared"
        assert handle.db.score(arch, "explore", "smoke").fitness == pytest.approx(fitness_before)
        assert {r.seed for r in handle.db.runs_for(arch, "recheck", "smoke")} == {2000, 2500}
    finally:
        handle.close()


def test_recheck_of_an_unknown_or_unquarantined_architecture_is_a_one_line_error(study):
    folder, ids = study
    for arch in (999, ids["baseline"]):
        done = _cli("recheck", str(arch), "--study", str(folder))
        assert done.returncode == 2
        assert done.stderr.strip().startswith("error:") and len(done.stderr.strip().splitlines()) <= 2


def test_the_rules_name_each_reason_and_leave_ordinary_runs_alone():
    from archscout.analyze.fitness import BaselineRef
    from archscout.records import RunResult

    ref = BaselineRef(n=3, val_loss_mean=5.0, val_loss_std=0.01)

    def run(val_loss, cpu=None):
        return RunResult(candidate_hash="x", preset="smoke", seed=0, status="ok", val_loss=val_loss,
                         trust={"cpu_s_per_step": cpu} if cpu else {})

    assert quarantine.assess(run(4.9, 1.0), ref, cpu_per_step=1.0) == []  # 2 % better: ordinary
    assert quarantine.assess(run(5.4), ref) == []  # worse is never suspicious
    loss = quarantine.assess(run(4.4), ref)  # 12 % below
    assert any(r.startswith("loss:") for r in loss) and any(r.startswith("noise:") for r in loss)
    assert [r.split(":")[0] for r in quarantine.assess(run(4.7), ref)] == ["noise"]  # 6 %, 30 sigma
    assert quarantine.assess(run(4.7), BaselineRef(n=3, val_loss_mean=5.0, val_loss_std=0.1)) == []
    assert [r.split(":")[0] for r in quarantine.assess(run(5.0, 12.0), ref, cpu_per_step=1.0)] == ["compute"]
