"""Process-tree bookkeeping for the sandbox: a pids cgroup per run where the machine allows one, and
a psutil record of every descendant seen, so that teardown can find and kill all of them.

Two independent nets, because each misses something the other catches:

- the cgroup holds every task the command ever starts, whatever it re-parents to or however it
  detaches (setsid, double fork), and its `pids.max` stops a fork bomb at the kernel. It needs a
  writable cgroup hierarchy: root on cgroup v1 (`/sys/fs/cgroup/pids`) or on a v2 root with the pids
  controller; a normal user usually has neither, and then `PidsCgroup.create` returns None;
- the psutil record keeps a `psutil.Process` for every descendant seen at each poll (identity
  includes the start time, so a recycled pid is never killed by mistake). It is what remains when
  there is no cgroup, and it still works after the direct child has died and the tree was orphaned.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import psutil

_CANDIDATE_BASES = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))
_counter = itertools.count()
_usable_base: list[Path | None] = []  # one entry once probed


def _new_name() -> str:
    return f"archscout-{os.getpid()}-{next(_counter)}-{os.urandom(3).hex()}"


def _try_base(base: Path) -> Path | None:
    probe = base / _new_name()
    try:
        probe.mkdir()
    except OSError:
        return None
    ok = (probe / "pids.max").exists()
    try:
        probe.rmdir()
    except OSError:
        pass
    return base if ok else None


def cgroup_base() -> Path | None:
    """The hierarchy where a per-run pids cgroup can be made, probed once per process."""
    if not _usable_base:
        _usable_base.append(next(filter(None, map(_try_base, _CANDIDATE_BASES)), None))
        if _usable_base[0] is not None:
            _remove_stale(_usable_base[0])
    return _usable_base[0]


def _remove_stale(base: Path) -> None:
    """Cgroups left by an archscout process that was killed before its teardown ran (the name holds
    the creator's pid); whatever still runs in them belongs to no live study."""
    for path in base.glob("archscout-*-*-*"):
        try:
            creator = int(path.name.split("-")[1])
        except ValueError:
            continue
        if creator != os.getpid() and not psutil.pid_exists(creator):
            stale = PidsCgroup(path)
            stale.kill_all()
            stale.remove(attempts=5)


class PidsCgroup:
    """One run's cgroup; `max_tasks` counts threads as well as processes (torch needs threads)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, max_tasks: int) -> PidsCgroup | None:
        base = cgroup_base()
        if base is None:
            return None
        path = base / _new_name()
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_tasks))
        except OSError:
            return None
        return cls(path)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def limit_hits(self) -> int:
        """How many forks the kernel refused because `pids.max` was reached."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill_all(self, deadline_s: float = 2.0) -> set[int]:
        """SIGKILL every member until the cgroup is empty; a killed task cannot fork any more, so
        with `pids.max` in place this ends after a few rounds."""
        killed: set[int] = set()
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        return killed

    def remove(self, attempts: int = 50) -> None:
        # rmdir fails while dying members are still being torn down; retry briefly, then leave the
        # empty directory behind rather than block the study (the next process removes it).
        for _ in range(attempts):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


class ProcessTree:
    """Every descendant of `root_pid` seen so far (alive ones only; dead entries are dropped)."""

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self.seen: set[psutil.Process] = set()
        try:
            self._root: psutil.Process | None = psutil.Process(root_pid)
        except psutil.Error:
            self._root = None

    def scan(self) -> int:
        """Record the current descendants; returns how many are alive now."""
        self.seen = {p for p in self.seen if _alive(p)}
        if self._root is not None:
            try:
                self.seen.update(self._root.children(recursive=True))
            except psutil.Error:
                pass
        return len(self.seen)

    def signal(self, sig: int, skip=lambda p: False) -> set[int]:
        hit = set()
        for proc in list(self.seen):
            if not skip(proc) and _alive(proc):
                try:
                    proc.send_signal(sig)
                    hit.add(proc.pid)
                except psutil.Error:
                    pass
        return hit


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_bwrap(proc: psutil.Process) -> bool:
    try:
        return proc.name() == "bwrap"
    except psutil.Error:
        return False


def _ppid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _is_helper(proc: psutil.Process, shim_path: str) -> bool:
    """bwrap and our supervisor are not "survivors" of the command."""
    try:
        return proc.name() == "bwrap" or shim_path in proc.cmdline()
    except psutil.Error:
        return False


class RunningChild:
    """One started sandbox child and everything needed to take its whole tree down."""

    def __init__(self, proc: subprocess.Popen, *, own_session: bool, cgroup: PidsCgroup | None,
                 grace_s: float, shim_path: str):
        self.proc, self.cgroup, self.grace_s, self.shim_path = proc, cgroup, grace_s, shim_path
        # in the fallback the command shares the child's session; bwrap's sandbox has its own
        self.own_session = own_session
        self.tree = ProcessTree(proc.pid)
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.survivors: set[int] = set()  # pids killed that were neither a helper nor the command
        self.nproc_hits = 0
        self._done = False

    def exited(self, timeout: float) -> bool:
        """Wait up to `timeout` for the child to exit WITHOUT reaping it: while it is an unreaped
        zombie its pid (and so its process group id) cannot be recycled, so killpg stays safe."""
        if self.pidfd is None:
            try:
                self.proc.wait(max(timeout, 0))
                return True
            except subprocess.TimeoutExpired:
                return False
        return bool(select.select([self.pidfd], [], [], max(timeout, 0))[0])

    def _killpg(self, sig: int) -> None:
        if self.own_session and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def teardown(self) -> None:
        """SIGTERM (if still running), the grace period, then SIGKILL for everything left."""
        if self._done:
            return
        self._done = True
        if not self.exited(0):
            self.tree.scan()
            # not bwrap: it would die at once and take the namespace with it, skipping the grace;
            # our supervisor handles SIGTERM by forwarding it and SIGKILLing after the grace
            self.tree.signal(signal.SIGTERM, skip=_is_bwrap)
            self._killpg(signal.SIGTERM)
            self.exited(self.grace_s + 0.5)
            self.tree.scan()
        helpers = {p for p in self.tree.seen if _is_helper(p, self.shim_path)}
        shims = {p.pid for p in helpers if not _is_bwrap(p)}
        self.survivors |= self.tree.signal(
            signal.SIGKILL, skip=lambda p: p in helpers or _ppid(p) in shims)
        self.tree.signal(signal.SIGKILL)
        self._killpg(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        if self.pidfd is not None:
            os.close(self.pidfd)
        if self.cgroup is not None:
            # members the psutil record missed: they appeared and detached between two polls
            for pid in self.cgroup.pids():
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    if _alive(proc) and not _is_helper(proc, self.shim_path):
                        self.survivors.add(pid)
            self.cgroup.kill_all()
            self.nproc_hits = self.cgroup.limit_hits()
            self.cgroup.remove()
