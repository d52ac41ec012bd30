"""The scale ladder: promotion decisions on synthetic scores with known noise, a real two-rung study
at smoke scale that ends with verification, resume after SIGKILL inside a promotion batch, and the
ladder's bad input (one line naming the field, exit 2, nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archscout.loop import Loop
from archscout.records import RunResult
from archscout.store import ladder as ladder_store
from archscout.study import open_study



def _presets(tmp_path: Path) -> Path:
    """smoke_big: the smoke preset trained 50 % longer (a costlier second rung for tests)."""
    text = Path(__import__("archscout").__file__).with_name("presets.toml").read_text()
    block = text.split("[preset.smoke]")[1].split("# ----")[0]
    block = block.replace("[[preset.smoke.tasks]]", "[[preset.smoke_big.tasks]]").replace("steps = 12", "steps = 18")
    path = tmp_path / "presets.toml"
    path.write_text("[preset.smoke_big]" + block)
    return path


def _config(tmp_path: Path, **extra) -> dict:
    return {"preset": "smoke", "presets_file": str(_presets(tmp_path)), "baseline_seeds": 2,
            "novelty.backend": "bm25", "ladder.rungs": ["smoke", "smoke_big"], "ladder.seeds": [2, 2],
            "ladder.top_fraction": 0.5, "ladder.promote_every": 2, "verify.seeds": 2, **extra}


def _run(preset: str, seed: int, val_loss: float, bench: float) -> RunResult:
    return RunResult(candidate_hash="synthetic", preset=preset, seed=seed, status="ok", val_loss=val_loss,
                     benchmark=bench, params=1000)


def test_a_planted_good_candidate_climbs_and_a_lucky_single_run_does_not(tmp_path):
    """Synthetic scores: baseline seed sigma 0.02 on loss and benchmark; 20 average candidates."""
    handle = open_study(tmp_path / "s", _config(tmp_path, **{"ladder.top_fraction": 0.1, "ladder.seeds": [3, 2]}))
    try:
        db, rng = handle.db, np.random.default_rng(0)
        add = lambda name: db.add_architecture(f"# {name}\n", name=name, origin="offline")  # noqa: E731
        base = db.add_architecture("# baseline\n", name="deltanet", origin="baseline")
        for seed, (loss, bench) in enumerate([(5.00, 0.50), (5.02, 0.48), (4.98, 0.52)]):
            db.add_run(base, "explore", _run("smoke", seed, loss, bench))
        for i in range(20):
            db.add_run(add(f"avg{i}"), "explore", _run("smoke", 0, 5.0 + rng.normal(0, 0.02), 0.5 + rng.normal(0, 0.02)))
        planted = add("planted")  # truly 2 sigma better, measured on 3 seeds
        for seed, loss in enumerate([4.965, 4.955, 4.96]):
            db.add_run(planted, "explore" if seed == 0 else "promote", _run("smoke", seed, loss, 0.54))
        lucky = add("lucky")  # one run better than any of planted's
        db.add_run(lucky, "explore", _run("smoke", 0, 4.945, 0.56))
        ladder = Loop(handle).ladder
        plan = {item["architecture_id"]: item for item in ladder.decide()}
        assert plan[planted]["action"] == "promote" and plan[planted]["rung"] == "smoke_big"
        assert plan[lucky]["action"] == "seeds" and plan[lucky]["seeds"] == [0, 1, 2]
        assert "posterior" in plan[lucky]["reason"]
        # its further seeds are average: the lucky one drops out, nothing promotes it
        for seed in (1, 2):
            db.add_run(lucky, "promote", _run("smoke", seed, 5.0 + 0.01 * seed, 0.5))
        plan = {item["architecture_id"]: item for item in ladder.decide()}
        assert lucky not in plan
        assert plan[planted]["action"] == "promote"
        # planted at the top rung with its seeds (and the baseline there): it goes to verification
        for seed, (loss, bench) in enumerate([(5.00, 0.50), (5.02, 0.48)]):
            db.add_run(base, "explore", _run("smoke_big", seed, loss, bench))
        for seed in (0, 1):
            db.add_run(planted, "promote", _run("smoke_big", seed, 4.96, 0.54))
        plan = {item["architecture_id"]: item for item in ladder.decide()}
        assert plan[planted]["action"] == "verify"
    finally:
        handle.close()


def _check_ladder(folder: Path) -> dict:
    """Every batch done; each planned seed has exactly one run; the baseline measured at both rungs."""
    handle = open_study(folder, create=False)
    try:
        db = handle.db
        batches = ladder_store.batches(db)
        assert batches and all(b["state"] == "done" for b in batches)
        base = db.architectures_by_origin("baseline")[0].id
        assert {r.seed for r in db.runs_for(base, "explore", "smoke_big") if r.status == "ok"} == {0, 1}
        for b in batches:
            for item in b["plan"]:
                runs = [r for r in db.runs_for(item["architecture_id"], preset=item["rung"])
                        if r.stage in ("explore", "promote")]
                seeds = [r.seed for r in runs]
                assert len(seeds) == len(set(seeds))
                failed = any(r.status != "ok" for r in runs)
                assert failed or set(item["seeds"]) <= set(seeds), (item, seeds)
        return {"batches": batches, "runs": db.counts()["runs"]}
    finally:
        handle.close()


@pytest.mark.timeout(1500)
def test_a_two_rung_study_promotes_and_verifies_at_the_top_rung(tmp_path):
    folder = tmp_path / "study"
    handle = open_study(folder, {**_config(tmp_path), "budget": 4})
    try:
        loop = Loop(handle)
        loop.run()
        db = handle.db
        promoted = db.architectures_with_runs("promote", "smoke_big")
        assert promoted, "nobody reached the second rung"
        verified = db.architectures_with_runs("verify", "smoke_big")
        assert verified and set(verified) <= set(promoted)
        assert all(db.score(a, "verify", "smoke_big") is not None for a in verified)
        # the pool was ranked by posterior: members carry a posterior sd
        assert any(m.sd is not None for m in db.latest_pool_version().members)
    finally:
        handle.close()
    _check_ladder(folder)
    out = subprocess.run([sys.executable, "-m", "archscout.cli", "status", "--study", str(folder)],
                         capture_output=True, text=True, check=True).stdout
    assert "ladder" in out and "smoke_big" in out and "promote" in out


@pytest.mark.timeout(1500)
def test_sigkill_inside_a_promotion_batch_loses_and_duplicates_no_run(tmp_path):
    folder = tmp_path / "study"
    sets = [a for k, v in _config(tmp_path, budget=4).items() for a in ("--set", f"{k}={_toml(v)}")]
    env = {k: v for k, v in os.environ.items() if k != "ARCHSCOUT_FAULT"}
    cmd = [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), *sets]
    killed = subprocess.run(cmd, env={**env, "ARCHSCOUT_FAULT": "commit:promote"}, capture_output=True, text=True,
                            timeout=1200)
    assert killed.returncode == -9, killed.stderr[-2000:]
    handle = open_study(folder, create=False)
    try:
        open_batch = ladder_store.open_batch(handle.db)
        assert open_batch is not None, "the kill did not land inside a batch"
        promote_runs = [r for r in handle.db.run_timeline() if r.stage == "promote"]
        assert len(promote_runs) == 1
        kept = (promote_runs[0].id, promote_runs[0].created_at)
    finally:
        handle.close()
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _check_ladder(folder)
    handle = open_study(folder, create=False)
    try:
        run = next(r for r in handle.db.run_timeline() if r.id == kept[0])
        assert run.created_at == kept[1], "the run stored before the kill was trained again"
        assert handle.db.experiments.counts_by_state().get("done", 0) + \
            handle.db.experiments.counts_by_state().get("failed", 0) == 4
    finally:
        handle.close()


def _toml(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@pytest.mark.parametrize("sets, field", [
    (["ladder.rungs=[\"smoke\", \"nope\"]"], "ladder.rungs"),
    (["ladder.rungs=[\"nano\", \"smoke\"]", "preset=nano"], "ladder.rungs"),
    (["ladder.rungs=[\"smoke\", \"nano\"]", "ladder.top_fraction=0"], "ladder.top_fraction"),
    (["ladder.rungs=[\"smoke\", \"nano\"]", "ladder.top_fraction=1.5"], "ladder.top_fraction"),
    (["ladder.rungs=[\"smoke\", \"nano\"]", "ladder.seeds=[2]"], "ladder.seeds"),
])
def test_bad_ladders_are_one_line_exit_2_and_write_nothing(tmp_path, sets, field):
    folder = tmp_path / "study"
    args = [a for s in sets for a in ("--set", s)]
    out = subprocess.run([sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and field in lines[0], out.stderr
    assert not folder.exists()


def test_a_study_without_a_ladder_is_one_rung(tmp_path):
    handle = open_study(tmp_path / "old", {"preset": "smoke"})
    try:
        assert handle.config.rungs() == ["smoke"] and not Loop(handle).ladder.enabled
    finally:
        handle.close()
    handle = open_study(tmp_path / "new", {"ladder.rungs": ["smoke", "nano"]})
    try:
        assert handle.config.preset == "smoke"  # the first rung names the study's preset
    finally:
        handle.close()


def test_a_study_from_before_the_ladder_upgrades_and_runs_as_one_rung(tmp_path):
    """A version-6 database (no ladder tables) with a study.toml that has no [ladder]: opening it
    migrates, the study is one rung, and the status shows no ladder."""
    from sqlalchemy import inspect

    from archscout.store import migrations as m
    from archscout.store.engine import make_engine
    from archscout.summary import status

    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "study.toml").write_text('preset = "smoke"\nbudget = 2\n')
    engine = make_engine(folder)
    m.upgrade(engine, target=6)
    assert not inspect(engine).has_table("ladder_batches")
    engine.dispose()
    handle = open_study(folder, create=False)
    try:
        assert inspect(handle.db.engine).has_table("ladder_batches")
        assert handle.config.rungs() == ["smoke"] and not Loop(handle).ladder.enabled
        assert status(handle)["ladder"] is None
    finally:
        handle.close()
