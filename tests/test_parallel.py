"""`archscout run --workers N` on a real Ray (marked `ray`; select with `-m ray`): an embedded
two-worker smoke study completes (SQLite, and PostgreSQL when ARCHSCOUT_TEST_PG_URL is set), a Ray worker killed
mid-evaluation is retried; a node removed from a two-node cluster mid-study costs at most that
evaluation (`worker_lost`), not the study; a driver killed with evaluations in flight leaves no
process behind and resumes with nothing lost or doubled; Ctrl-C cancels and releases; bad worker
counts and addresses write nothing; a kill -9 inside a promotion batch whose runs are on the workers
loses and duplicates no run; a task's probe report and progress reach the driver while it trains
(a kill then resumes without probing again)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from archscout.loop import Loop
from archscout.store import open_study_db
from archscout.study import open_study
from test_loop import TEST_CONFIG, _check_consistent

SMALL = {**TEST_CONFIG, "baseline_seeds": 1}


def _cli(folder: Path, *args: str) -> list[str]:
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    return [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), *sets, *args]


@pytest.fixture
def short_tmp():
    """A short scratch folder: Ray puts its session's Unix sockets under TMPDIR, and their paths may
    not exceed 107 bytes (pytest's tmp_path is too deep)."""
    path = Path(tempfile.mkdtemp(prefix="as-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(scratch: Path) -> dict:
    env = dict(os.environ)
    env["TMPDIR"] = str(scratch)  # this test's sandboxes and Ray session files
    env.pop("ARCHSCOUT_FAULT", None)
    return env


@pytest.mark.parametrize("args", [
    ("--workers", "0"),
    ("--workers", "100000"),  # x 1 thread (smoke): more CPUs than any test machine has
    ("--workers", "2", "--ray-address", "127.0.0.1:1"),  # nothing listens on port 1
    ("--workers", "2", "--ray-address", "no-port"),
])
def test_bad_workers_or_address_is_one_line_and_writes_nothing(tmp_path, short_tmp, args):
    folder = tmp_path / "study"
    proc = subprocess.run(_cli(folder, "--budget", "1", *args), capture_output=True, text=True, timeout=120,
                          env=_env(short_tmp))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not folder.exists()


@pytest.mark.ray
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_run_a_smoke_study_to_completion_and_survive_a_killed_worker(tmp_path, short_tmp, request, backend):
    folder = tmp_path / "study"
    db_args = ("--db", request.getfixturevalue("pg_url")) if backend == "postgresql" else ()
    driver = subprocess.Popen(_cli(folder, "--budget", "3", "--workers", "2", *db_args), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=_env(short_tmp))
    killed = []
    if backend == "sqlite":
        # a Ray worker killed while its sandbox runs: Ray re-runs the task (max_retries), the
        # experiment does not fail with worker_lost
        while driver.poll() is None and not killed:
            for proc in _descendants(driver.pid):
                name = " ".join(_cmdline(proc))
                if name.startswith("ray::archscout-") and any(
                        "archscout.evaluate.worker" in " ".join(_cmdline(c)) for c in _descendants(proc.pid)):
                    proc.kill()
                    killed.append(proc.pid)
                    break
            time.sleep(0.1)
    _, err = driver.communicate(timeout=800)
    assert driver.returncode == 0, err[-3000:]
    assert killed or backend != "sqlite", "no Ray worker was seen running a sandbox"
    _check_consistent(folder, 3)
    handle = open_study(folder, create=False)
    try:
        rows = [handle.db.experiments.by_seq(i) for i in (1, 2, 3)]
        # every experiment records the pool it was sampled from; the claims were released at the end
        assert all(r.pool_version is not None for r in rows)
        assert all(r.owner is None for r in rows)
        # two in flight at once: the second started before the first finished
        assert rows[1].started_at < rows[0].finished_at
        assert handle.db.experiments.counts_by_failure().get("worker_lost", 0) == 0
    finally:
        handle.close()


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_node_removed_mid_study_fails_only_its_evaluation(tmp_path, short_tmp, monkeypatch):
    from ray.cluster_utils import Cluster

    from archscout.parallel.driver import ParallelDriver
    from archscout.parallel.ray_pool import RayPool

    monkeypatch.setenv("TMPDIR", str(short_tmp))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker_node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    handle = open_study(tmp_path / "study", {**SMALL, "budget": 3})
    # no retries: the evaluation that was on the removed node must come back as worker_lost
    pool = RayPool.connect(2, handle.preset, device="cpu", address=cluster.address, max_retries=0)
    removed = threading.Event()

    def remove_when_both_run():
        # two sandboxes running at once (one CPU per node): one of them is on the node removed. A
        # task merely submitted may still be waiting to spill over to the second node.
        while not removed.is_set():
            sandboxes = [p for p in psutil.process_iter(["cmdline"])
                         if (p.info["cmdline"] or [])[1:3] == ["-m", "archscout.evaluate.worker"]
                         and str(short_tmp) in " ".join(p.info["cmdline"])]
            if len(sandboxes) == 2:
                cluster.remove_node(worker_node, allow_graceful=False)
                removed.set()
            time.sleep(0.05)

    watcher = threading.Thread(target=remove_when_both_run, daemon=True)
    try:
        loop = Loop(handle)
        ParallelDriver(pool).attach(loop)
        watcher.start()
        counts = loop.run()
        assert removed.is_set(), "the study ended before two evaluations ran at once"
        assert sum(counts.values()) == 3 and handle.db.experiments.open_experiments() == []
        assert handle.db.experiments.counts_by_failure().get("worker_lost", 0) >= 1
    finally:
        removed.set()
        handle.close()
        pool.shutdown()
        cluster.shutdown()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_driver_killed_with_evaluations_in_flight_resumes_without_loss_or_orphans(tmp_path, short_tmp):
    folder = tmp_path / "study"
    env = _env(short_tmp)
    driver = subprocess.Popen(_cli(folder, "--budget", "3", "--workers", "2"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # wait for an experiment whose evaluation is in flight (proposed while it probes, checked
        # while it trains) while sandboxed workers run under the driver's Ray workers
        while True:
            assert driver.poll() is None, driver.stderr.read()[-3000:]
            if (folder / "study.db").exists():
                db = open_study_db(folder)
                try:
                    states = [e.state for e in db.experiments.open_experiments()]
                finally:
                    db.close()
                family = _descendants(driver.pid)
                sandboxes = [p for p in family if "archscout.evaluate.worker" in " ".join(_cmdline(p))]
                if {"proposed", "checked"} & set(states) and sandboxes:
                    break
            time.sleep(0.2)
    finally:
        family = _descendants(driver.pid)
        names = [" ".join(_cmdline(p))[:80] for p in family]
        driver.kill()
        driver.wait()
    assert any("raylet" in n for n in names), names
    # Ray's processes, its agents and the sandboxes: none survives the driver (parallel/reaper.py)
    deadline = time.monotonic() + 60
    while (alive := [p for p in family if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], [(p.pid, _cmdline(p)) for p in alive]
    final = subprocess.run(_cli(folder, "--budget", "3", "--workers", "2"), capture_output=True, text=True,
                           timeout=800, env=env)
    assert final.returncode == 0, final.stderr[-3000:]
    _check_consistent(folder, 3)


def _running(proc: psutil.Process) -> bool:
    # a killed process reparented to an init that does not reap stays a zombie: it is dead
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def test_one_worker_never_imports_ray(tmp_path):
    code = ("import sys; from pathlib import Path; from archscout.parallel import connect; "
            f"assert connect(Path({str(tmp_path / 's')!r}), {{'preset': 'smoke'}}, 1, None) is None; "
            "import archscout.loop, archscout.cli; assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert not (tmp_path / "s").exists()


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_ctrl_c_cancels_the_tasks_and_releases_the_claims(tmp_path, short_tmp):
    import signal

    folder = tmp_path / "study"
    # its own process group, as a terminal's Ctrl-C reaches the whole foreground group
    driver = subprocess.Popen(_cli(folder, "--budget", "3", "--workers", "2"), env=_env(short_tmp),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while True:
            assert driver.poll() is None, driver.stderr.read()[-3000:]
            family = _descendants(driver.pid)
            if any("archscout.evaluate.worker" in " ".join(_cmdline(p)) for p in family) and (folder / "study.db").exists():
                db = open_study_db(folder)
                try:
                    started = db.experiments.open_experiments()
                finally:
                    db.close()
                if started:
                    break
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err[-3000:]
    assert "resume with: archscout run" in err
    deadline = time.monotonic() + 60
    while (alive := [p for p in family if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], [(p.pid, _cmdline(p)) for p in alive]
    db = open_study_db(folder)
    try:
        left = db.experiments.open_experiments()
        # stopped, not failed: the open experiments wait, unclaimed, for the next run
        assert left and all(e.owner is None for e in left)
        # a cancelled evaluation is no failure of its candidate
        assert not set(db.experiments.counts_by_failure()) & {"worker_lost", "killed", "crash", "exception"}
    finally:
        db.close()


@pytest.mark.ray
@pytest.mark.timeout(1800)
def test_sigkill_inside_a_parallel_promotion_batch_loses_and_duplicates_no_run(tmp_path, short_tmp):
    """test_ladder's kill -9 inside a promotion batch, with the batch's runs on two Ray workers: the
    run stored before the kill is kept, the ones in flight are trained once on resume, and the
    ladder's runs trained side by side on the workers."""
    from test_ladder import _check_ladder, _config, _toml

    from archscout.store import ladder as ladder_store

    folder = tmp_path / "study"
    sets = [a for k, v in _config(tmp_path, budget=4).items() for a in ("--set", f"{k}={_toml(v)}")]
    cmd = [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), *sets, "--workers", "2"]
    env = _env(short_tmp)
    killed = subprocess.run(cmd, env={**env, "ARCHSCOUT_FAULT": "commit:promote"}, capture_output=True, text=True,
                            timeout=1200)
    assert killed.returncode == -9, killed.stderr[-2000:]
    handle = open_study(folder, create=False)
    try:
        assert ladder_store.open_batch(handle.db) is not None, "the kill did not land inside a batch"
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
        db = handle.db
        run = next(r for r in db.run_timeline() if r.id == kept[0])
        assert run.created_at == kept[1], "the run stored before the kill was trained again"
        counts = db.experiments.counts_by_state()
        assert counts.get("done", 0) + counts.get("failed", 0) == 4
        runs = db.run_timeline()
        base = db.architectures_by_origin("baseline")[0].id
        ladder_runs = [r for r in runs if r.stage in ("promote", "verify") or (r.architecture_id == base and r.preset == "smoke_big")]
        spans = {r.id: (r.created_at - timedelta(seconds=r.result.wall_s["total"]), r.created_at) for r in runs}
        # run one at a time on the driver's thread (as before), two ladder runs never overlap
        overlapping = [(a.id, b.id) for a in ladder_runs for b in ladder_runs if a.id < b.id
                       and spans[a.id][0] < spans[b.id][1] and spans[b.id][0] < spans[a.id][1]]
        assert overlapping, "the ladder's runs trained one at a time: its batches did not use the free workers"
    finally:
        handle.close()


@pytest.mark.ray
@pytest.mark.timeout(1200)
def test_driver_killed_while_a_ray_task_trains_resumes_without_probing_again(tmp_path, short_tmp):
    """The task streams its messages to the driver: the probe report commits `checked` while the
    task trains on, and training progress reaches the driver (the `during:train` crash point fires
    there). A driver killed then resumes the experiment in `checked` and trains the stored report's
    file without probing it again."""
    folder = tmp_path / "study"
    env = _env(short_tmp)
    # the baseline first, so that the crash point fires in a candidate's training, not the baseline's
    first = subprocess.run(_cli(folder, "--budget", "0", "--workers", "2"), env=env, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    killed = subprocess.run(_cli(folder, "--budget", "3", "--workers", "2"), env={**env, "ARCHSCOUT_FAULT": "during:train"},
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, ("the driver never saw a task's training progress", killed.stderr[-3000:])
    handle = open_study(folder, create=False)
    try:
        # the one whose training was under way (another may have been probing, or trained already)
        training = [e for e in handle.db.experiments.open_experiments() if e.state == "checked"]
        assert training, "no probe report committed while its task trained"
        stored = {e.id: e.probe_report for e in training}
        assert all(r and r["status"] == "ok" and r["probes"] for r in stored.values())
        assert all(handle.db.runs_for(e.architecture_id) == [] for e in training)
    finally:
        handle.close()
    final = subprocess.run(_cli(folder, "--budget", "3", "--workers", "2"), env=env, capture_output=True,
                           text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    _check_consistent(folder, 3)
    handle = open_study(folder, create=False)
    try:
        for exp_id, report in stored.items():
            resumed = handle.db.experiments.get(exp_id)
            assert resumed.probe_report == report
            (run,) = handle.db.runs_for(resumed.architecture_id)
            # the run carries the stored report itself (its timings included), not a fresh probe's
            assert [p.model_dump(mode="json") for p in run.result.probes] == report["probes"]
    finally:
        handle.close()
