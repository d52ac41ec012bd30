"""The discovery loop end to end at the smoke preset: a short study completes and stores a
consistent record, and a study SIGKILLed at several points resumes with nothing lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from archscout.loop import Loop
from archscout.study import open_study

# bm25 keeps these tests independent of the embedding model's load time; both backends are
# covered by the novelty tests
TEST_CONFIG = {
    "preset": "smoke",
    "baseline_seeds": 2,
    "novelty.backend": "bm25",
}


def _check_consistent(folder: Path, budget: int) -> dict:
    """Every experiment finished exactly once, with exactly the rows its final state implies."""
    handle = open_study(folder, create=False)
    try:
        db, exps = handle.db, handle.db.experiments
        rows = [exps.by_seq(seq) for seq in range(1, budget + 1)]
        assert all(r is not None for r in rows), "an experiment number is missing"
        assert exps.by_seq(budget + 1) is None, "more experiments than the budget"
        assert exps.open_experiments() == []
        counts = exps.counts_by_state()
        assert sum(counts.values()) == budget
        for exp in rows:
            assert exp.state in ("done", "failed")
            if exp.state == "done":
                arch = db.architecture(exp.architecture_id)
                assert arch.experiment_id == exp.id
                runs = db.runs_for(arch.id, "explore", "smoke")
                assert len(runs) == 1 and runs[0].status == "ok"
                assert db.score(arch.id, "explore", "smoke") is not None
                assert len(db.analyses_for(arch.id)) == 1
            else:
                assert exp.failure_reason
        # no architecture without an experiment except the baseline, and none stored twice
        assert len(db.architectures_by_origin("baseline")) == 1
        stored = db.counts()
        with_arch = [exp for exp in rows if exp.architecture_id is not None]
        assert stored["architectures"] == 1 + len(with_arch)
        assert len({exp.architecture_id for exp in with_arch}) == len(with_arch)
        baseline_runs = len(db.runs_for(db.architectures_by_origin("baseline")[0].id))
        assert stored["runs"] == baseline_runs + sum(len(db.runs_for(e.architecture_id)) for e in with_arch)
        assert stored["scores"] == 1 + counts.get("done", 0)
        return {"counts": counts, "stored": stored}
    finally:
        handle.close()


@pytest.mark.timeout(600)
def test_short_study_runs_scores_analyses_and_updates_the_pool(tmp_path):
    folder = tmp_path / "study"
    handle = open_study(folder, {**TEST_CONFIG, "budget": 4})
    events: list[dict] = []
    try:
        loop = Loop(handle, events=events.append)
        counts = loop.run()
        assert sum(counts.values()) == 4
        assert counts.get("done", 0) >= 3, counts
        ref = loop.ref
        assert ref.n == 2 and ref.val_loss_std > 0
        # smoke scales the cold start to 2 experiments and re-ranks every 2: the pool moved
        assert handle.db.latest_pool_version().version >= 2
        assert any(e.get("stage") == "pool" for e in events)
        children = handle.db.children_of(1)
        assert children and all(c.origin == "offline" for c in children)
    finally:
        handle.close()
    _check_consistent(folder, 4)
    status = subprocess.run(
        [sys.executable, "-m", "archscout.cli", "status", "--study", str(folder), "--json"],
        capture_output=True, text=True, check=True,
    )
    data = json.loads(status.stdout)
    assert data["experiments"]["total"] == 4
    assert data["baseline"]["val_loss"]["n"] == 2
    assert data["best"] and data["best"][0]["fitness"] >= data["best"][-1]["fitness"]


def _run_cli(folder: Path, budget: int, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ARCHSCOUT_FAULT"}
    # sandbox scratch folders (and so the workers' job paths) land here, which tells this test's
    # workers apart from any other archscout running on the machine
    env["TMPDIR"] = str(_scratch_root(folder))
    if fault:
        env["ARCHSCOUT_FAULT"] = fault
    sets = [arg for key, value in TEST_CONFIG.items() for arg in ("--set", f"{key}={value}")]
    return subprocess.run(
        [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), "--budget", str(budget), *sets],
        env=env, capture_output=True, text=True, timeout=600,
    )


def _scratch_root(folder: Path) -> Path:
    root = folder.parent / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _workers_alive(scratch_root: Path) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "archscout.evaluate.worker" in cmd and str(scratch_root) in cmd:
            alive.append(proc)
    return alive


@pytest.mark.timeout(900)
def test_sigkill_at_any_point_then_run_again_resumes_without_loss_or_duplicates(tmp_path):
    folder = tmp_path / "study"
    budget = 3
    # in the order the loop reaches them: inside the proposal's commit, during training, after
    # training before its commit, inside the evaluation's and the score's commits
    for fault in ("commit:proposed", "during:train", "after:train", "commit:evaluated", "commit:scored"):
        proc = _run_cli(folder, budget, fault)
        assert proc.returncode == -signal.SIGKILL, (fault, proc.returncode, proc.stderr[-2000:])
        # the sandboxed worker of a killed loop does not outlive it
        for survivor in _workers_alive(_scratch_root(folder)):
            try:
                survivor.wait(timeout=10)
            except psutil.TimeoutExpired:
                pytest.fail(f"worker {survivor.pid} survived the loop's SIGKILL at {fault}")
    final = _run_cli(folder, budget, None)
    assert final.returncode == 0, final.stderr[-2000:]
    summary = _check_consistent(folder, budget)
    # one explore run per done experiment plus the baseline's seeds: nothing counted twice
    done = summary["counts"].get("done", 0)
    assert done >= 1


@pytest.mark.timeout(900)
def test_killed_after_checked_resumes_by_training_without_probing_again(tmp_path):
    """Probes and training share one child; `checked` commits with the probe report as soon as the
    probes pass. A driver killed then (its child dies with it) resumes the experiment in `checked`
    and trains the file with the stored report: no second probe."""
    folder = tmp_path / "study"
    budget = 3  # the kill comes at the first experiment whose probes pass
    proc = _run_cli(folder, budget, "after:checked")
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    handle = open_study(folder, create=False)
    try:
        exps = handle.db.experiments
        killed = next(e for e in exps.open_experiments())
        assert killed.state == "checked"
        stored = killed.probe_report
        assert stored and stored["status"] == "ok" and stored["probes"]
        assert stored["candidate_hash"] == handle.db.architecture(killed.architecture_id).code_hash
        events: list[dict] = []
        # budget = experiments so far: only the killed one is carried on, nothing new starts
        Loop(handle, events=events.append).run(budget=sum(exps.counts_by_state().values()))
        assert not [e for e in events if e.get("phase") == "probe"], "the resumed experiment was probed again"
        assert any(e.get("phase") == "train" for e in events)
        resumed = exps.get(killed.id)
        assert resumed.state in ("done", "failed") and resumed.probe_report == stored
        (run,) = handle.db.runs_for(killed.architecture_id)
        # the run carries the stored report itself (its timings included), not a fresh probe's
        assert [p.model_dump(mode="json") for p in run.result.probes] == stored["probes"]
    finally:
        handle.close()


@pytest.mark.timeout(600)
def test_resume_keeps_the_measured_builtin_baseline_when_its_text_changed(tmp_path):
    """A study made by an older archscout stored the built-in baseline's text of that version (its
    helpers were once copied into the file). The model is the same, so a resume must reuse that
    architecture and its runs, not store and train the new text as a second baseline."""
    from sqlalchemy import update

    from archscout.records import code_hash
    from archscout.store import schema as s

    handle = open_study(tmp_path / "s", TEST_CONFIG, create=True)
    try:
        loop = Loop(handle)
        first = loop.ensure_baseline()
        old_id = loop.baseline_id
        older = handle.db.architecture(old_id).code + "\n# the text an older archscout shipped\n"
        with handle.db.transaction() as conn:
            conn.execute(update(s.architectures).where(s.architectures.c.id == old_id)
                         .values(code=older, code_hash=code_hash(older)))
        runs = len(handle.db.runs_for(old_id))
        again = Loop(handle)
        assert again.ensure_baseline() == first
        assert again.baseline_id == old_id
        assert [a.id for a in handle.db.architectures_by_origin("baseline")] == [old_id]
        assert len(handle.db.runs_for(old_id)) == runs
    finally:
        handle.close()
