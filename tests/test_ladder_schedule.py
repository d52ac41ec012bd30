"""The ladder's batch bookkeeping (ladder.BatchWork), which the serial loop and the parallel driver
share, on a real study database with synthetic runs (no training): a rung's baseline seeds are
handed out before any candidate's run there; a failed climb drops that candidate's other seeds; a
resumed batch hands out nothing already stored or in flight; a failed baseline stops the batch; a
verify item's fresh seeds are runs like any other and `finish` decides them without training."""

from __future__ import annotations

import pytest

from archscout.ladder import BaselineFailed
from archscout.loop import Loop
from archscout.records import FailureKind, RunResult, failed_result
from archscout.store import ladder as ladder_store
from archscout.study import open_study
from archscout.verify import VERIFY_SEED_BASE
from test_ladder import _config


def _ok(preset: str, seed: int, val_loss: float = 5.0, bench: float = 0.5) -> RunResult:
    return RunResult(candidate_hash="synthetic", preset=preset, seed=seed, status="ok", val_loss=val_loss,
                     benchmark=bench, params=1000)


def _failed(preset: str, seed: int) -> RunResult:
    return failed_result(candidate_hash="synthetic", preset=preset, seed=seed, kind=FailureKind.crash,
                         message="synthetic crash")


@pytest.fixture
def study(tmp_path):
    """A two-rung study (smoke, smoke_big; 2 baseline seeds) with the baseline measured at smoke
    and two candidates with one exploration run each."""
    handle = open_study(tmp_path / "s", _config(tmp_path, **{"ladder.seeds": [3, 2]}))
    db = handle.db
    base = db.add_architecture("# baseline\n", name="deltanet", origin="baseline")
    for seed in (0, 1):
        db.add_run(base, "explore", _ok("smoke", seed, 5.0 + 0.01 * seed))
    a = db.add_architecture("# a\n", name="a", origin="offline")
    b = db.add_architecture("# b\n", name="b", origin="offline")
    db.add_run(a, "explore", _ok("smoke", 0, 4.9))
    db.add_run(b, "explore", _ok("smoke", 0, 4.95))
    loop = Loop(handle)
    loop.baseline_id = base
    yield handle, loop, base, a, b
    handle.close()


def _plan(a: int, b: int) -> list[dict]:
    return [{"architecture_id": a, "action": "seeds", "rung": "smoke", "seeds": [0, 1, 2], "reason": "test"},
            {"architecture_id": b, "action": "promote", "rung": "smoke_big", "seeds": [0], "reason": "test"}]


def _drain(work) -> list:
    out = []
    while (job := work.take()) is not None:
        out.append(job)
    return out


def test_the_rung_baseline_comes_before_the_candidates_there_and_nothing_is_handed_out_twice(study):
    handle, loop, base, a, b = study
    batch = ladder_store.add_batch(handle.db, 2, _plan(a, b))
    work = loop.ladder.work(batch)
    first = _drain(work)
    # a's two missing seeds at the study's rung, the baseline's two seeds at smoke_big; not b yet
    assert sorted((j.kind, j.arch_id, j.rung, j.seed) for j in first) == sorted(
        [("seeds", a, "smoke", 1), ("seeds", a, "smoke", 2),
         ("baseline", base, "smoke_big", 0), ("baseline", base, "smoke_big", 1)])
    assert "smoke_big" not in loop.rung_refs
    by_kind = {(j.kind, j.seed): j for j in first}
    work.record(by_kind["baseline", 0], _ok("smoke_big", 0))
    assert work.take() is None, "a candidate started at smoke_big before the rung's baseline was measured"
    # a driver killed here resumes the open batch: what is not stored is handed out again (the runs
    # in flight died with it), the stored baseline seed is not
    resumed = loop.ladder.work(ladder_store.open_batch(handle.db))
    assert sorted((j.kind, j.seed) for j in _drain(resumed)) == [("baseline", 1), ("seeds", 1), ("seeds", 2)]
    work.record(by_kind["baseline", 1], _ok("smoke_big", 1))
    (promote,) = _drain(work)
    assert (promote.kind, promote.arch_id, promote.rung, promote.seed) == ("promote", b, "smoke_big", 0)
    assert loop.rung_refs["smoke_big"][0] == 1000  # the rung's baseline params, for the monitor
    for job in first:
        if job.kind == "seeds":
            work.record(job, _ok("smoke", job.seed))
    assert not work.done()
    work.record(promote, _ok("smoke_big", 0))
    assert work.done()
    work.finish()
    assert ladder_store.open_batch(handle.db) is None
    runs = handle.db.runs_for(a, preset="smoke")
    assert sorted((r.stage, r.seed) for r in runs) == [("explore", 0), ("promote", 1), ("promote", 2)]
    assert [(r.stage, r.seed) for r in handle.db.runs_for(b, preset="smoke_big")] == [("promote", 0)]
    # a batch whose runs are all stored has nothing left to hand out
    again = loop.ladder.work({**batch, "state": "open"})
    assert again.take() is None and again.done()


def test_a_failed_seed_stops_that_climb_and_a_failed_baseline_stops_the_batch(study):
    handle, loop, base, a, b = study
    work = loop.ladder.work(ladder_store.add_batch(handle.db, 2, _plan(a, b)))
    first = work.take()  # the plan's order: a's seeds come first
    assert (first.kind, first.arch_id, first.seed) == ("seeds", a, 1)
    work.record(first, _failed("smoke", 1))
    jobs = {(j.kind, j.seed): j for j in _drain(work)}
    assert set(jobs) == {("baseline", 0), ("baseline", 1)}, "a's climb went on after its failed run"
    # a resumed batch does not start a's remaining seed either
    resumed = loop.ladder.work(ladder_store.open_batch(handle.db))
    assert all(j.arch_id != a for j in _drain(resumed))
    with pytest.raises(BaselineFailed, match="smoke_big"):
        work.record(jobs["baseline", 0], _failed("smoke_big", 0))


def test_verify_seeds_are_scheduled_runs_and_finish_only_decides(study):
    handle, loop, base, a, b = study
    db = handle.db
    for seed in (0, 1):
        db.add_run(base, "explore", _ok("smoke_big", seed, 5.0 + 0.01 * seed))
        db.add_run(b, "promote", _ok("smoke_big", seed, 4.9))
    plan = [{"architecture_id": b, "action": "verify", "rung": "smoke_big", "seeds": [], "reason": "test"}]
    work = loop.ladder.work(ladder_store.add_batch(db, 4, plan))
    jobs = _drain(work)
    assert sorted((j.kind, j.arch_id, j.seed) for j in jobs) == [("verify", b, VERIFY_SEED_BASE), ("verify", b, VERIFY_SEED_BASE + 1)]
    for job in jobs:
        work.record(job, _ok("smoke_big", job.seed, 4.9 - 0.001 * job.seed))
    assert work.done()
    work.finish()  # would train in-process if a verify seed were missing; here it only decides
    assert db.score(b, "verify", "smoke_big") is not None
    assert sorted(r.seed for r in db.runs_for(b, "verify", "smoke_big")) == [VERIFY_SEED_BASE, VERIFY_SEED_BASE + 1]
    assert ladder_store.open_batch(db) is None
