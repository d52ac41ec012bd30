"""The sandbox against one hostile program per attack (tests/evaluate/attacks/), in both isolation
modes where the mode can contain the attack. Each test asserts the containment itself (the file was
not written, the listener saw nothing, no process survived) and the classification."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from archscout.config import LimitSpec
from archscout.evaluate import sandbox
from archscout.evaluate._proctree import cgroup_base
from archscout.evaluate.sandbox import classify, probe_isolation, run_sandboxed
from archscout.records import FailureKind

ATTACKS = Path(__file__).parent / "attacks"
LIMITS = LimitSpec(memory_mb=2048, cpu_s=60, nproc=64, file_mb=10, nofile=256, output_kb=64)
GRACE_S = 1.0

NETNS, NETNS_WHY = probe_isolation("auto")
needs_netns = pytest.mark.skipif(NETNS != "netns", reason=f"no netns isolation: {NETNS_WHY}")
BOTH = [pytest.param("netns", marks=needs_netns), "fallback"]


@pytest.fixture
def token() -> str:
    """A marker passed to every attack, so survivors can be found by their command line."""
    return f"archscout-attack-{uuid.uuid4().hex}"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def processes_with(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if token in (proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def attack(name: str, token: str, scratch: Path, isolation: str, *args: str,
           limits: LimitSpec = LIMITS, timeout_s: float = 20.0, **kwargs):
    argv = [sys.executable, str(ATTACKS / f"{name}.py"), token, *args]
    # a checkout under /tmp is hidden by the sandbox's private /tmp: show it the attack scripts
    kwargs.setdefault("ro_binds", [ATTACKS])
    outcome = run_sandboxed(argv, scratch=scratch, limits=limits, timeout_s=timeout_s,
                            isolation=isolation, grace_s=GRACE_S, **kwargs)
    assert outcome.isolation == isolation or isolation == "fallback" == outcome.isolation[:8]
    return outcome


@pytest.mark.parametrize("isolation", BOTH)
def test_infinite_loop_times_out_and_its_group_is_gone(token, scratch, isolation):
    # how soon it is stopped is printed by benchmarks/timings.py (no wall-clock bound in a test)
    outcome = attack("infinite_loop", token, scratch, isolation, timeout_s=1.0)
    assert outcome.timed_out
    assert processes_with(token) == []
    kind, message = classify(outcome)
    assert kind is FailureKind.timeout and "timeout" in message


@pytest.mark.parametrize("isolation", BOTH)
def test_allocating_50_gb_is_a_memory_failure_and_the_parent_is_unaffected(token, scratch,
                                                                           isolation):
    rss_before = psutil.Process().memory_info().rss
    outcome = attack("allocate_50gb", token, scratch, isolation)
    assert psutil.Process().memory_info().rss - rss_before < 100 * 2**20
    assert outcome.memory_error
    kind, message = classify(outcome)
    assert kind is FailureKind.memory and "MemoryError" in message


@pytest.mark.parametrize("isolation", BOTH)
def test_fork_bomb_is_held_by_the_process_limit_and_leaves_no_survivor(token, scratch, isolation):
    if isolation == "fallback" and cgroup_base() is None:
        pytest.skip("fallback without a writable pids cgroup: RLIMIT_NPROC counts all of the "
                    "user's processes (and root ignores it); only the parent's poll bounds a bomb")
    outcome = attack("fork_bomb", token, scratch, isolation, timeout_s=1.0)
    if cgroup_base() is not None or os.getuid() != 0:
        assert (scratch / "fork_refused").exists(), "the kernel never refused a fork"
    assert outcome.nproc_limit_hit
    assert processes_with(token) == []
    kind, message = classify(outcome)
    assert kind is FailureKind.forbidden and "process limit" in message


@pytest.mark.parametrize("isolation", BOTH)
def test_without_a_cgroup_the_parent_stops_a_tree_larger_than_nproc(token, scratch, isolation,
                                                                     monkeypatch):
    if os.getuid() != 0:
        pytest.skip("not root: RLIMIT_NPROC refuses the forks before the parent's poll sees them")
    monkeypatch.setattr(sandbox.PidsCgroup, "create", classmethod(lambda cls, n: None))
    limits = LIMITS.model_copy(update={"nproc": 16})
    outcome = attack("slow_spawner", token, scratch, isolation, limits=limits, timeout_s=10)
    # stopped by the parent's process count, before its 10 s timeout
    assert not outcome.timed_out and outcome.nproc_limit_hit
    assert processes_with(token) == []
    kind, message = classify(outcome)
    assert kind is FailureKind.forbidden and "process limit" in message


@pytest.mark.parametrize("isolation", BOTH)
def test_filling_the_disk_stops_at_the_file_size_limit(token, scratch, isolation):
    outcome = attack("fill_disk", token, scratch, isolation)
    assert (scratch / "big.bin").stat().st_size <= LIMITS.file_mb * 2**20
    kind, message = classify(outcome)
    assert kind is FailureKind.forbidden and "file size limit" in message


@pytest.mark.parametrize("isolation", BOTH)
def test_a_connection_to_a_local_listener_never_arrives(token, scratch, isolation):
    if isolation == "fallback":
        pytest.skip("the fallback has no network namespace: it cannot stop network access")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        outcome = attack("connect_out", token, scratch, isolation, str(listener.getsockname()[1]))
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "connected" not in outcome.stdout
    kind, message = classify(outcome)
    assert kind is FailureKind.forbidden and "Connection refused" in message


@pytest.mark.parametrize("isolation", BOTH)
def test_secrets_in_the_parent_environment_do_not_reach_the_child(token, scratch, isolation,
                                                                  monkeypatch):
    secrets = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test",
               "ARCHSCOUT_DATABASE_URL": "postgresql://u:p@db/x", "HTTPS_PROXY": "http://p:1"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    outcome = attack("read_secrets", token, scratch, isolation,
                     extra_env={"OMP_NUM_THREADS": "1"})
    assert classify(outcome) == (None, "")
    seen = json.loads(outcome.result_bytes)
    assert not set(secrets) & set(seen)
    assert "PYTHONPATH" not in seen
    assert seen["HOME"] == seen["TMPDIR"] == str(scratch)
    assert seen["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("isolation", BOTH)
def test_writing_into_the_study_folder_is_refused(token, scratch, tmp_path, isolation):
    if isolation == "fallback":
        pytest.skip("the fallback has no mount namespace: it can write wherever the user can")
    study = tmp_path / "study"
    study.mkdir()
    target = study / "results.db"
    outcome = attack("write_outside", token, scratch, isolation, str(target), ro_binds=[study, ATTACKS])
    assert not target.exists()
    kind, message = classify(outcome)
    assert kind is FailureKind.forbidden and "Read-only file system" in message


@pytest.mark.parametrize("isolation", BOTH)
def test_killing_the_parent_kills_only_the_supervisor(token, scratch, isolation):
    outcome = attack("kill_parent", token, scratch, isolation)
    assert processes_with(token) == []
    if outcome.isolation == "fallback-uid":  # the supervisor is root's: the kill is refused
        assert classify(outcome)[0] is FailureKind.forbidden
        return
    assert outcome.signal == signal.SIGKILL
    kind, _ = classify(outcome)
    assert kind is FailureKind.killed


@pytest.mark.parametrize("isolation", BOTH)
def test_printing_1_gb_is_capped_and_the_parent_stays_small(token, scratch, isolation):
    rss_before = psutil.Process().memory_info().rss
    outcome = attack("flood_stdout", token, scratch, isolation)
    assert psutil.Process().memory_info().rss - rss_before < 50 * 2**20
    assert classify(outcome) == (None, "")
    assert len(outcome.stdout) < LIMITS.output_kb * 1024 + 200
    assert f"{2**30 - LIMITS.output_kb * 1024} bytes dropped" in outcome.stdout
    assert outcome.stdout.startswith("xxx") and outcome.stdout.endswith("x\n")


@pytest.mark.parametrize("isolation", BOTH)
def test_raising_at_import_is_an_exception_with_the_traceback_tail(token, scratch, isolation):
    argv = [sys.executable, "-m", "raise_at_import", token]
    outcome = run_sandboxed(argv, scratch=scratch, limits=LIMITS, timeout_s=20,
                            isolation=isolation, extra_env={"PYTHONPATH": str(ATTACKS)}, ro_binds=[ATTACKS])
    kind, message = classify(outcome)
    assert kind is FailureKind.exception
    summary, _, tail = message.partition("\n")
    assert summary == "RuntimeError: boom at import time"
    assert "raise_at_import.py" in tail and "_helper" in tail


@pytest.mark.parametrize("isolation", BOTH)
def test_a_segfault_is_a_crash(token, scratch, isolation):
    outcome = attack("segfault", token, scratch, isolation)
    assert outcome.signal == signal.SIGSEGV and outcome.returncode == -signal.SIGSEGV
    assert classify(outcome) == (FailureKind.crash, "crashed with SIGSEGV")


@pytest.mark.parametrize("isolation", BOTH)
def test_a_detached_grandchild_is_killed_when_the_command_exits(token, scratch, isolation):
    outcome = attack("orphan_grandchild", token, scratch, isolation)
    assert classify(outcome) == (None, "")
    assert outcome.survivors_killed >= 1
    assert processes_with(token) == []
    if isolation == "fallback":  # inside bwrap the reported pid is the namespace's, not ours
        pid = json.loads(outcome.result_bytes)["grandchild_pid"]
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("isolation", BOTH)
def test_ctrl_c_in_the_parent_takes_the_tree_down(token, scratch, isolation):
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", token]
    with pytest.raises(KeyboardInterrupt):
        run_sandboxed(sleeper, scratch=scratch, limits=LIMITS, timeout_s=30, isolation=isolation,
                      poll=interrupt, poll_interval=0.1)
    assert len(calls) == 3
    assert processes_with(token) == []


@pytest.mark.parametrize("isolation", BOTH)
def test_the_tree_dies_with_the_archscout_process(token, tmp_path, isolation):
    sleeper = "import pathlib, time; pathlib.Path('up').touch(); time.sleep(60)"
    driver = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from archscout.config import LimitSpec
        from archscout.evaluate.sandbox import run_sandboxed
        run_sandboxed([sys.executable, "-c", {sleeper!r}, {token!r}],
                      scratch=Path({str(tmp_path)!r}), limits=LimitSpec(), timeout_s=60,
                      isolation={isolation!r})
    """)
    parent = subprocess.Popen([sys.executable, "-c", driver], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 60
    while not (tmp_path / "up").exists():
        assert time.monotonic() < deadline, "the sandboxed sleeper never started"
        assert parent.poll() is None, "the driver died before the sleeper started"
        time.sleep(0.05)
    assert processes_with(token)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while processes_with(token):
        assert time.monotonic() < deadline, "the sandboxed sleeper outlived its parent"
        time.sleep(0.05)


def test_the_cpu_limit_ends_a_spinning_command_with_sigxcpu(token, scratch):
    limits = LIMITS.model_copy(update={"cpu_s": 1})
    outcome = attack("infinite_loop", token, scratch, NETNS, limits=limits, timeout_s=30)
    assert not outcome.timed_out and outcome.cpu_limit_hit
    assert outcome.signal == signal.SIGXCPU
    assert classify(outcome) == (FailureKind.timeout, "CPU time limit exceeded (SIGXCPU)")


def outcome_of(returncode=1, sig=None, stderr="", **flags) -> sandbox.SandboxOutcome:
    fields = dict(timed_out=False, cpu_limit_hit=False, memory_error=False, forbidden=False)
    fields.update(flags)
    return sandbox.SandboxOutcome(
        returncode=returncode, signal=sig, wall_s=1.0, stdout="", stderr=stderr,
        isolation="netns", result_bytes=None, survivors_killed=0, **fields)


@pytest.mark.parametrize(
    "outcome, kind, words",
    [
        (outcome_of(0), None, ""),
        (outcome_of(-25, signal.SIGXFSZ), FailureKind.forbidden, "file size limit"),
        (outcome_of(-9, signal.SIGKILL, memory_error=True), FailureKind.memory, "memory limit"),
        (outcome_of(-6, signal.SIGABRT, "terminate called after throwing an instance of "
                    "'std::bad_alloc'", memory_error=True), FailureKind.memory, "bad_alloc"),
        (outcome_of(-7, signal.SIGBUS), FailureKind.crash, "SIGBUS"),
        (outcome_of(-15, signal.SIGTERM), FailureKind.killed, "SIGTERM"),
        (outcome_of(1, stderr="OSError: [Errno 101] Network is unreachable", forbidden=True),
         FailureKind.forbidden, "Network is unreachable"),
        (outcome_of(2, stderr="usage: worker JOB"), FailureKind.exception, "exited with code 2"),
    ],
)
def test_classify_maps_each_ending_to_its_failure_kind(outcome, kind, words):
    got, message = classify(outcome)
    assert got is kind and words in message


def test_the_supervisor_takes_the_tree_down_when_its_lifeline_closes(token):
    # the lifeline alone (no parent-death signal): it covers bwrap's start-up race, and threads
    status_r, status_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    shim = subprocess.Popen(
        [sys.executable, "-I", "-S", sandbox.SHIM, "supervise", f"status_fd={status_w}",
         f"lifeline_fd={lifeline_r}", "grace_s=1", "--",
         sys.executable, "-c", "import time; time.sleep(60)", token],
        pass_fds=(status_w, lifeline_r))
    os.close(status_w)
    os.close(lifeline_r)
    try:
        assert os.read(status_r, 100).startswith(b'{"started": 1}')
        os.close(lifeline_w)
        assert shim.wait(timeout=10) == 128 + signal.SIGTERM
        assert processes_with(token) == []
    finally:
        shim.kill()
        os.close(status_r)


@needs_netns
def test_the_venv_python_imports_torch_inside_the_sandbox(scratch):
    pytest.importorskip("torch", reason="torch is not installed")
    argv = [sys.executable, "-c", "import torch; print(torch.ones(2).sum().item())"]
    outcome = run_sandboxed(argv, scratch=scratch, limits=LIMITS, timeout_s=60)
    assert outcome.ok, outcome.stderr
    assert outcome.stdout.strip() == "2.0"


def test_archscout_sandbox_env_var_forces_the_fallback(scratch, monkeypatch):
    monkeypatch.setenv("ARCHSCOUT_SANDBOX", "fallback")
    level, reason = probe_isolation()
    assert level in ("fallback", "fallback-uid")
    assert reason.startswith("forced by ARCHSCOUT_SANDBOX=fallback")
    outcome = run_sandboxed([sys.executable, "-c", "pass"], scratch=scratch, limits=LIMITS,
                            timeout_s=20)
    assert outcome.isolation.startswith("fallback") and outcome.ok


def test_the_result_file_comes_back_but_not_through_a_symlink(scratch):
    code = ("import os; os.symlink('/etc/hostname', os.environ['ARCHSCOUT_RESULT'])")
    outcome = run_sandboxed([sys.executable, "-c", code], scratch=scratch, limits=LIMITS,
                            timeout_s=20, result_name="out.json")
    assert outcome.ok and outcome.result_bytes is None
    outcome = run_sandboxed(
        [sys.executable, "-c", "import os; open(os.environ['ARCHSCOUT_RESULT'], 'w').write('42')"],
        scratch=scratch, limits=LIMITS, timeout_s=20, result_name="fresh.json")
    assert outcome.result_bytes == b"42"


@needs_netns
def test_a_sandbox_that_cannot_start_raises_instead_of_blaming_the_command(scratch, tmp_path):
    with pytest.raises(sandbox.SandboxError, match="could not start"):
        run_sandboxed([sys.executable, "-c", "pass"], scratch=scratch, limits=LIMITS,
                      timeout_s=20, ro_binds=[tmp_path / "does-not-exist"])


def test_scratch_dir_is_fresh_and_removed_unless_kept(tmp_path):
    with sandbox.scratch_dir(tmp_path) as first:
        (first / "sub").mkdir()
        (first / "sub" / "f").write_text("x")
        (first / "sub").chmod(0o500)
    assert not first.exists()
    with sandbox.scratch_dir(tmp_path, keep=True) as kept:
        assert kept != first and not any(kept.iterdir())
    assert kept.exists()
