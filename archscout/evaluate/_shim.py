"""The supervisor that stands between the archscout parent and a sandboxed command.

`sandbox.py` starts this file as `python -I -S _shim.py ROLE KEY=VALUE... -- COMMAND...`. It uses
the standard library only, because `-S` keeps site-packages (and so psutil) out: starting it costs
one bare interpreter start-up, not an archscout import.

Roles:

- `enter` (before bwrap): join the run's cgroup if there is one, ask the kernel to SIGKILL us when
  archscout dies, then exec COMMAND (bwrap). Everything bwrap starts inherits the cgroup, so
  `pids.max` bounds the whole tree.
- `supervise` (inside bwrap, or directly in the fallback mode): join the cgroup if given, become a
  child subreaper, fork COMMAND with the resource limits applied, wait for it, then kill every
  descendant still alive (orphans are re-parented to us, so a grandchild that called setsid cannot
  hide), and report on the status pipe, as JSON lines, that it started and then the exit code or
  signal, CPU seconds, peak RSS and how many survivors were killed. When archscout dies (the
  lifeline pipe reaches EOF, or, in the fallback, the parent-death signal arrives) it takes the tree
  down: SIGTERM, then SIGKILL. With `uid=N` (the fallback as root) the command runs as that uid.
  The command's parent is this process, not archscout, so
  `os.kill(os.getppid(), SIGKILL)` kills the supervisor, never the study.

It does not decide anything: every limit is computed by the parent and passed as `key=value`
arguments (`rlimit=NAME:SOFT:HARD` may repeat). The start-up cost is paid on every sandboxed run, so
it avoids `json` and `signal` (both pull in `re`/`enum`): the status line is formatted by hand and
`_signal` is the C module that `signal` wraps.
"""

import _signal as signal
import _thread
import ctypes
import os
import resource
import sys
import time

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _join_cgroup(path: str) -> None:
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


def _descendants(root: int) -> list[int]:
    """Live (non-zombie) descendants of `root`, read from /proc (psutil is not importable here)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    found, stack = [], [root]
    while stack:
        for pid in children.get(stack.pop(), ()):
            found.append(pid)
            stack.append(pid)
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_descendants(sig: int) -> set[int]:
    """Signal every descendant until none is left (for SIGKILL) or once (for other signals)."""
    hit: set[int] = set()
    me = os.getpid()
    for _ in range(200):
        pids = _descendants(me)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
                hit.add(pid)
            except ProcessLookupError:
                pass
        if sig != signal.SIGKILL:
            break
        _reap()
        time.sleep(0.005)
    return hit


def _drop_capabilities() -> None:
    # Only reached in the fallback mode when archscout runs as root: with an empty bounding set the
    # exec'd command gets no capabilities, so it cannot raise its own rlimits or remount anything.
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)


def _exec_command(cfg: dict, argv: list[str], supervisor: int) -> None:
    """In the forked child: restore default signal dispositions, apply the limits, exec."""
    try:
        # CPython ignores SIGPIPE and SIGXFSZ; ignored dispositions survive exec, handlers do not.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != supervisor:  # it died before the line above took effect
            os._exit(1)
        for name, soft, hard in cfg["rlimit"]:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        if cfg.get("drop_caps"):
            _drop_capabilities()
        if "uid" in cfg:
            # the fallback as root: a uid of its own (bounding set already empty, and setuid away
            # from 0 clears the permitted capabilities too)
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        os.execvp(argv[0], argv)
    except BaseException as err:  # noqa: BLE001 - nothing may escape a forked child
        os.write(2, f"archscout sandbox: cannot start {argv[0]!r}: {err}\n".encode())
    os._exit(127)


def supervise(cfg: dict, argv: list[str]) -> int:
    status_fd = cfg["status_fd"]
    os.set_inheritable(status_fd, False)
    if "cgroup" in cfg:
        _join_cgroup(cfg["cgroup"])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)

    grace = float(cfg.get("grace_s", 2.0))
    stopping = False

    def stop(signum, frame):
        # The parent's timeout, Ctrl-C or death: SIGTERM the tree now, SIGKILL it after the grace.
        nonlocal stopping
        if not stopping:
            stopping = True
            _kill_descendants(signal.SIGTERM)
            signal.setitimer(signal.ITIMER_REAL, grace)

    signal.signal(signal.SIGALRM, lambda s, f: _kill_descendants(signal.SIGKILL))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    if "parent_pid" in cfg:
        # Fallback mode: when archscout dies, the kernel sends us SIGTERM and we take the tree down.
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != cfg["parent_pid"]:
            return 1
    if "lifeline_fd" in cfg:
        os.set_inheritable(cfg["lifeline_fd"], False)

    if stopping:
        return 143
    # tells the parent that the sandbox itself is up: a failure from here on is the command's
    _report(status_fd, {"started": 1})
    supervisor = os.getpid()
    # Signals stay blocked across the fork: a SIGTERM that reached the child before it reset its
    # dispositions would run this process's Python handler there (swallowing the signal and arming
    # an interval timer that survives exec). The child unblocks after resetting them (a pending
    # signal then takes its default action); this process right after the fork.
    caught = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, caught)
    target = os.fork()
    if target == 0:
        _exec_command(cfg, argv, supervisor)
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if "lifeline_fd" in cfg:
        # Only archscout holds the write end, so EOF here means archscout is gone, whichever thread
        # started us and however far bwrap had got (its own die-with-parent has a start-up race).
        # Started after the fork: forking a threaded process is what CPython warns against.
        _thread.start_new_thread(_watch_lifeline, (cfg["lifeline_fd"],))
    while True:
        try:
            pid, wstatus, usage = os.wait4(-1, 0)
        except ChildProcessError:
            wstatus, usage = 0, None
            break
        if pid == target:
            break

    survivors = _kill_descendants(signal.SIGKILL)
    report = {"survivors": len(survivors)}
    if usage is not None:
        report["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
        report["max_rss_kb"] = usage.ru_maxrss
    if os.WIFSIGNALED(wstatus):
        report["signal"] = os.WTERMSIG(wstatus)
        code = 128 + report["signal"]
    else:
        code = report["exit"] = os.waitstatus_to_exitcode(wstatus)
    _report(status_fd, report)
    return code


def _watch_lifeline(fd: int) -> None:
    while os.read(fd, 1):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _report(fd: int, report: dict) -> None:
    # every value is a number, so this is valid JSON
    os.write(fd, ("{" + ", ".join(f'"{k}": {v}' for k, v in report.items()) + "}\n").encode())


def parse_config(items: list[str]) -> dict:
    cfg: dict = {"rlimit": []}
    for item in items:
        key, _, value = item.partition("=")
        if key == "rlimit":
            name, soft, hard = value.split(":")
            cfg["rlimit"].append((name, int(soft), int(hard)))
        elif key in ("status_fd", "lifeline_fd", "parent_pid", "uid"):
            cfg[key] = int(value)
        elif key == "grace_s":
            cfg[key] = float(value)
        elif key == "drop_caps":
            cfg[key] = value == "1"
        else:
            cfg[key] = value
    return cfg


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args or args[0] not in ("enter", "supervise") or args[-1] == "--":
        print("usage: _shim.py enter|supervise KEY=VALUE... -- COMMAND...", file=sys.stderr)
        return 2
    split = args.index("--")
    role, cfg, argv = args[0], parse_config(args[1:split]), args[split + 1:]
    try:
        if role == "supervise":
            return supervise(cfg, argv)
        if "cgroup" in cfg:
            _join_cgroup(cfg["cgroup"])
        # bwrap's --die-with-parent only covers its own child; this makes bwrap itself die with
        # archscout, and the pid namespace with it
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != cfg["parent_pid"]:
            return 1
        os.execv(argv[0], argv)
    except OSError as err:
        # no "started" line reaches the parent, which reports a sandbox failure, not the command's
        print(f"archscout sandbox: {role} failed: {err}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main())
