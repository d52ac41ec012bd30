"""Parallel throughput of `archscout run --workers N`, and the driver's own capacity.

1. Experiments per hour at a small preset (smoke by default; 1 thread per evaluation), one worker
   (the serial in-process path) against N workers (embedded Ray), each a fresh study of `--budget`
   experiments; the rate is taken over the experiments alone (first start to last finish in the
   database), so the baseline's seeds are not counted.
2. The driver's capacity: the real loop (sampling, offline proposals, novelty, scoring, analysis,
   pool updates, every database write) with each evaluation replaced by a stand-in Ray task that
   sleeps `--sleep` seconds and returns a real smoke result, on a local Ray cluster of `--slots`
   logical CPUs. Prints experiments completed per second and the driver process's CPU share
   (CPU seconds / wall seconds; 1.0 = one core busy).

    python benchmarks/parallel_throughput.py [--preset smoke] [--budget 6] [--workers 2]
    python benchmarks/parallel_throughput.py --capacity-only [--slots 64] [--sleep 0.5] [--experiments 400]

On a shared machine the figures vary with what else runs: say so next to them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def rate(folder: Path) -> tuple[float, int]:
    """(experiments per hour, experiments) over the study's experiments' own span."""
    from archscout.study import open_study

    handle = open_study(folder, create=False)
    try:
        exps = [e for e in handle.db.experiments.recent(10_000) if e.finished_at is not None]
    finally:
        handle.close()
    span = (max(e.finished_at for e in exps) - min(e.started_at for e in exps)).total_seconds()
    return len(exps) / span * 3600, len(exps)


def throughput(preset: str, budget: int, workers: int, scratch: Path) -> float:
    folder = scratch / f"w{workers}"
    cmd = [sys.executable, "-m", "archscout.cli", "run", "--study", str(folder), "--preset", preset,
           "--budget", str(budget), "--workers", str(workers), "--set", "baseline_seeds=1",
           "--set", "novelty.backend=bm25"]
    env = dict(os.environ, TMPDIR=str(scratch))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    per_hour, n = rate(folder)
    print(f"  {workers} worker(s): {per_hour:7.1f} experiments/h ({n} experiments, preset {preset})", flush=True)
    return per_hour


def capacity(slots: int, sleep_s: float, experiments: int, scratch: Path) -> None:
    import ray

    from archscout.config import get_preset
    from archscout.evaluate.runner import evaluate
    from archscout.loop import Loop
    from archscout.parallel.driver import ParallelDriver
    from archscout.parallel.ray_pool import RayPool
    from archscout.records import RunResult, code_hash
    from archscout.space import baseline_path
    from archscout.study import open_study

    preset = get_preset("smoke")
    # one real smoke result, reused by every stand-in evaluation (with the candidate's own hash)
    canned = evaluate(baseline_path("deltanet").read_text(), preset, 0).model_dump_json()

    @ray.remote(num_cpus=1)
    def stand_in(seconds: float) -> None:
        time.sleep(seconds)

    class SleepPool(RayPool):
        """RayPool.evaluate's contract without the sandbox: the probe report is handed to
        `on_checked` (a passed result serves), then the run comes back after `sleep_s`."""

        def evaluate(self, *, code, preset, seed, probed=None, on_checked=None, progress=None, **options) -> RunResult:
            result = RunResult.model_validate_json(canned)
            result.candidate_hash, result.seed = code_hash(code), seed
            if on_checked is not None and probed is None:
                on_checked(result)
            ref = stand_in.remote(sleep_s)
            with self._lock:
                self._inflight[ref] = "evaluate"
            try:
                ray.get(ref)
            finally:
                with self._lock:
                    self._inflight.pop(ref, None)
            return result

    ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False)
    handle = open_study(scratch / "capacity", {"preset": "smoke", "baseline_seeds": 1, "budget": experiments,
                                               "novelty.backend": "bm25"})
    try:
        loop = Loop(handle)
        ParallelDriver(SleepPool(slots, 1, 0, embedded=True)).attach(loop)
        loop.ensure_baseline()
        me = psutil.Process()
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        counts = loop.run()
        wall, cpu = time.perf_counter() - t0, sum(me.cpu_times()[:2]) - cpu0
        done = sum(counts.values())
        print(f"  driver capacity: {done / wall:6.1f} experiments/s completed with {slots} slots "
              f"(stand-in evaluation {sleep_s} s, ideal {slots / sleep_s:.0f}/s); driver CPU share "
              f"{cpu / wall:.2f} cores ({done} experiments in {wall:.1f} s)", flush=True)
    finally:
        handle.close()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--budget", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--sleep", type=float, default=0.5)
    parser.add_argument("--experiments", type=int, default=400)
    parser.add_argument("--capacity-only", action="store_true")
    parser.add_argument("--throughput-only", action="store_true")
    args = parser.parse_args()
    # short: Ray's Unix socket paths under TMPDIR may not exceed 107 bytes
    scratch = Path(tempfile.mkdtemp(prefix="as-bench-", dir="/tmp"))
    try:
        if not args.capacity_only:
            print(f"throughput on {psutil.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at start):")
            one = throughput(args.preset, args.budget, 1, scratch)
            many = throughput(args.preset, args.budget, args.workers, scratch)
            print(f"  speed-up {many / one:.2f}x with {args.workers} workers (goal >= {0.9 * args.workers:.1f}x)")
        if not args.throughput_only:
            capacity(args.slots, args.sleep, args.experiments, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
