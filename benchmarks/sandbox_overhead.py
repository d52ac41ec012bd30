"""What the sandbox costs per run: median wall milliseconds to start and finish `python -c pass`
directly (subprocess.run) and through `run_sandboxed` in each isolation mode this machine has.

    python benchmarks/sandbox_overhead.py [--repeats 20]

The difference is a fixed cost per evaluation (supervisor start-up, bwrap namespace set-up, cgroup
creation, teardown); a training run lasts minutes, so it only matters for the fast probes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from archscout.config import LimitSpec
from archscout.evaluate.sandbox import probe_isolation, run_sandboxed, scratch_dir

COMMAND = [sys.executable, "-c", "pass"]


def median_ms(run, repeats: int) -> float:
    run()  # warm the page cache and the probes
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    limits = LimitSpec()

    rows = [("plain subprocess", median_ms(lambda: subprocess.run(COMMAND, check=True),
                                           args.repeats))]
    modes = ["fallback"]
    level, reason = probe_isolation("auto")
    if level == "netns":
        modes.insert(0, "netns")
    else:
        print(f"netns unavailable: {reason}")
    for mode in modes:
        with scratch_dir() as scratch:
            def sandboxed():
                outcome = run_sandboxed(COMMAND, scratch=scratch, limits=limits, timeout_s=60,
                                        isolation=mode)  # noqa: B023 - timed within this iteration
                assert outcome.ok, outcome.stderr
            rows.append((f"sandboxed ({mode})", median_ms(sandboxed, args.repeats)))

    base = rows[0][1]
    print(f"median of {args.repeats} runs of: python -c pass")
    for name, ms in rows:
        extra = f"  (+{ms - base:.0f} ms)" if name != rows[0][0] else ""
        print(f"  {name:<20} {ms:8.1f} ms{extra}")


if __name__ == "__main__":
    main()
