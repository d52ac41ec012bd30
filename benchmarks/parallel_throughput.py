"""Parallel throughput of `archscout run --workers N`, and the driver's own capacity.

1. Experiments per hour at a small preset (smoke by default; 1 thread per evaluation), one worker
   (the serial in-process path) against N workers (embedded Ray), each a fresh study of `--budget`
   experiments; the rate is taken over the experiments alone (first start to last finish in the
   database), so the baseline's seeds are not counted.
2. The driver's capacity: the real loop (sampling, offline proposals, novelty, scoring, analysis,
   pool updates, every database write) with each evaluation replaced by a stand-in Ray task that
   sleeps `--sleep` seconds and returns a real smoke result, on a local Ray cluster of `--slots`
   logical CPUs (their worker processes started before the clock). Prints experiments completed per
   second and the driver process's CPU share (CPU seconds / wall seconds; 1.0 = one core busy).
3. `--profile N`: the same loop for N experiments, serial, with an evaluation that returns the
   canned result at once (no Ray), under cProfile: the driver's own cost per experiment and where
   it goes.

    python benchmarks/parallel_throughput.py [--preset smoke] [--budget 6] [--workers 2]
    python benchmarks/parallel_throughput.py --capacity-only [--slots 64] [--sleep 0.5] [--experiments 400]
    python benchmarks/parallel_throughput.py --profile 200   # the driver's cost per experiment, cProfiled

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


def _canned() -> tuple[str, str]:
    """One real smoke evaluation of the baseline: (result JSON, passed probe report JSON), reused by
    every stand-in evaluation with the candidate's own hash and seed."""
    from archscout.config import get_preset
    from archscout.evaluate.runner import evaluate
    from archscout.space import baseline_path

    reports = []
    result = evaluate(baseline_path("deltanet").read_text(), get_preset("smoke"), 0, on_checked=reports.append)
    if not result.ok or not reports:
        raise SystemExit(f"the canned baseline evaluation failed: {result.failure}")
    return result.model_dump_json(), reports[0].model_dump_json()


def _stand_in_result(canned: tuple[str, str], code: str, seed: int, probed, on_checked=None):
    """What RayPool.evaluate does: hand the passed probe report to `on_checked` when the task probed
    (not when it resumed from a stored report), and return the run."""
    from archscout.records import RunResult, code_hash

    result = RunResult.model_validate_json(canned[0])
    result.candidate_hash, result.seed = code_hash(code), seed
    if probed is None and on_checked is not None:
        report = RunResult.model_validate_json(canned[1])
        report.candidate_hash, report.seed = result.candidate_hash, seed
        on_checked(report)
    return result


def _capacity_study(folder: Path, experiments: int):
    from archscout.study import open_study

    return open_study(folder, {"preset": "smoke", "baseline_seeds": 1, "budget": experiments,
                               "novelty.backend": "bm25"})


def capacity(slots: int, sleep_s: float, experiments: int, scratch: Path) -> None:
    import ray

    from archscout.loop import Loop
    from archscout.parallel.driver import ParallelDriver
    from archscout.parallel.ray_pool import RayPool

    canned = _canned()

    @ray.remote(num_cpus=1)
    def stand_in(seconds: float) -> None:
        time.sleep(seconds)

    class SleepPool(RayPool):
        """RayPool.evaluate's contract without the sandbox: the passed probe report goes to
        `on_checked` when the task probes, then the run comes back after `sleep_s`."""

        def evaluate(self, *, code, preset, seed, probed=None, on_checked=None, progress=None, **options):
            ref = stand_in.remote(sleep_s)  # one task per experiment: probes and training in one child
            with self._lock:
                self._inflight[ref] = "evaluate"
            try:
                ray.get(ref)
            finally:
                with self._lock:
                    self._inflight.pop(ref, None)
            return _stand_in_result(canned, code, seed, probed, on_checked)

    ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False)
    # every slot's worker process started before the clock: on a small machine, starting 64 Python
    # workers takes longer than the measurement and would be counted as the driver's slowness
    ray.get([stand_in.remote(1.0) for _ in range(slots)])
    handle = _capacity_study(scratch / "capacity", experiments)
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
              f"{cpu / wall:.2f} cores ({done} experiments in {wall:.1f} s; load average "
              f"{os.getloadavg()[0]:.1f} at the end)", flush=True)
    finally:
        handle.close()
        ray.shutdown()


def profile(experiments: int, scratch: Path, top: int) -> None:
    """The driver's own cost per experiment: the same loop, serial, with an instant stand-in
    evaluation (no Ray, no sleep), under cProfile; prints ms per experiment and the top functions."""
    import cProfile
    import pstats

    from archscout.loop import Loop

    canned = _canned()
    handle = _capacity_study(scratch / "profile", experiments)
    try:
        loop = Loop(handle)
        loop.remote = lambda *, code, preset, seed, probed=None, on_checked=None, **options: _stand_in_result(
            canned, code, seed, probed, on_checked)
        loop.ensure_baseline()
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        counts = loop.run()
        profiler.disable()
        wall = time.perf_counter() - t0
        done = sum(counts.values())
        print(f"  driver cost, serial with an instant evaluation: {1000 * wall / done:.1f} ms per experiment "
              f"under cProfile ({done} experiments in {wall:.1f} s; {counts})", flush=True)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    finally:
        handle.close()


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
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="only profile the driver: N experiments, serial, instant stand-in evaluation")
    parser.add_argument("--top", type=int, default=40, help="functions --profile prints")
    args = parser.parse_args()
    # short: Ray's Unix socket paths under TMPDIR may not exceed 107 bytes
    scratch = Path(tempfile.mkdtemp(prefix="as-bench-", dir="/tmp"))
    try:
        if args.profile:
            profile(args.profile, scratch, args.top)
            return
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
