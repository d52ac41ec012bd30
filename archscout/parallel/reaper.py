"""The embedded Ray cluster does not outlive its driver, even one killed with `kill -9`.

Ray ties its head processes (gcs_server, raylet) to the driver that started them, and the raylet's
workers to the raylet, but the raylet's agents (ray::DashboardAgent, ray::RuntimeEnvAgent) were
seen surviving a SIGKILLed driver, reparented to init. So `start(driver_pid)` launches this module
as a small watchdog process: every half second it notes the driver's descendants (Ray's processes,
their workers and the sandboxes under them), and when its lifeline — a pipe whose only writer is
the driver — reaches end-of-file (the driver exited, however it died), it SIGKILLs every process
of its last snapshot that is still the same process (pid and start time). A driver that stops
cleanly shuts Ray down first, so the reaper then finds nothing left to kill.

What is not here: an attached cluster (`--ray-address`): its processes belong to the cluster, and
Ray itself kills the workers of a job whose driver died.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import psutil


def start(driver_pid: int) -> subprocess.Popen:
    """Launch the watchdog for `driver_pid` (this process); keep the returned Popen alive: its stdin
    is the lifeline, closed by the kernel when the driver dies."""
    return subprocess.Popen(
        [sys.executable, "-m", "archscout.parallel.reaper", str(driver_pid)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # its own session: a Ctrl-C or a kill of the driver's process group must not take it first
        start_new_session=True,
    )


def _snapshot(driver: psutil.Process) -> dict[int, float]:
    try:
        found = driver.children(recursive=True)
    except psutil.Error:
        return {}
    out = {}
    for proc in found:
        try:
            out[proc.pid] = proc.create_time()
        except psutil.Error:
            pass
    out.pop(os.getpid(), None)
    return out


def _kill(snapshot: dict[int, float]) -> None:
    for pid, created in snapshot.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created:  # not a new process that reused the pid
                proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def main(driver_pid: int) -> None:
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    snapshot: dict[int, float] = {}
    lifeline = sys.stdin.fileno()
    while True:
        # the lifeline is readable only at end-of-file: the driver never writes to it
        ready, _, _ = select.select([lifeline], [], [], 0.5)
        if ready and not os.read(lifeline, 1):
            break
        # finished processes are dropped, so a study of thousands of evaluations keeps a small list
        snapshot = {pid: t for pid, t in snapshot.items() if psutil.pid_exists(pid)} | _snapshot(driver)
    _kill(snapshot)


if __name__ == "__main__":
    main(int(sys.argv[1]))
