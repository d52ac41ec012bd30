"""Start a detached daemon (double fork, setsid) that tries to move itself out of the run's cgroup
into the root one and then sleeps; raise this run's pids.max to "max"; report what worked."""

import json
import os
import sys
import time


def own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers in ("", "pids"):
                    base = "/sys/fs/cgroup" if controllers == "" else "/sys/fs/cgroup/pids"
                    return base + path
    except OSError:
        pass
    return None


def try_write(path: str, text: str) -> str:
    try:
        with open(path, "w") as f:
            f.write(text)
        return "written"
    except OSError as err:
        return f"denied: {type(err).__name__}"


report = {}
cgroup = own_cgroup()
report["pids.max"] = try_write(os.path.join(cgroup, "pids.max"), "max") if cgroup else "no cgroup"
read_r, read_w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        root = "/sys/fs/cgroup/pids" if os.path.isdir("/sys/fs/cgroup/pids") else "/sys/fs/cgroup"
        moved = try_write(os.path.join(root, "cgroup.procs"), str(os.getpid()))
        os.write(read_w, moved.encode())
        os.close(read_w)
        while True:
            time.sleep(1)
    os._exit(0)
os.close(read_w)
report["left cgroup"] = os.read(read_r, 100).decode() or "unknown"
with open(os.environ["ARCHSCOUT_RESULT"], "w") as f:
    json.dump(report, f)
