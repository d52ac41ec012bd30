"""Loop overhead: wall time per experiment spent on everything except training, vs the total.

    python benchmarks/overhead.py --study DIR                # measure an existing study
    python benchmarks/overhead.py --preset tiny --budget 3   # run a fresh study, then measure
    python benchmarks/overhead.py --checks --preset tiny     # one evaluation: the trust checks' share

For every finished experiment: total = finished_at - started_at (from the experiment's committed
state transitions); training = the sum of its tasks' training wall time measured inside the worker
(optimiser steps and evaluations). Overhead = total - training: proposing, novelty, sandbox
start-up, probes, data loading, scoring, analysis and the database. Goal: <= 5% of the total.

`--checks` evaluates one candidate (default DeltaNet) and splits out what the defences against
faked scores cost (evaluate/scoring.py, README "Threat model"): the float64 probe phase before
training, the perturbed copies compared on the trained weights (`trust.checks_s`, measured by the
parent) and the evaluation rounds as a whole (scored batches sent to the child and scored by the
parent, `trust.eval_rounds_s`; the child used to compute the scored batches itself). Goal: the
perturbed copies <= 5% of the experiment.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from archscout.loop import Loop
from archscout.study import open_study


def measure(folder: Path) -> list[tuple[float, float]]:
    handle = open_study(folder, create=False)
    try:
        out = []
        for exp in handle.db.experiments.recent(limit=10_000):
            if exp.state != "done" or exp.finished_at is None:
                continue
            run = next(r for r in handle.db.runs_for(exp.architecture_id, "explore") if r.status == "ok")
            training = sum(t.wall_s for t in run.result.tasks.values())
            out.append(((exp.finished_at - exp.started_at).total_seconds(), training))
        return out
    finally:
        handle.close()


def measure_checks(preset_name: str, candidate: Path) -> None:
    import time

    from archscout.config import get_preset
    from archscout.evaluate.runner import evaluate

    preset = get_preset(preset_name)
    # a loaded machine must not turn the measurement into a timeout; the shares are what counts
    preset.limits.train_timeout_s = max(preset.limits.train_timeout_s, 4 * 3600)
    preset.limits.cpu_s = max(preset.limits.cpu_s, 8 * 3600)
    started = time.perf_counter()
    result = evaluate(candidate, preset, 0)
    total = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"{candidate.name} failed: {result.failure.kind.value}: {result.failure.message}")
    trust = result.trust
    print(f"{candidate.name} at {preset_name}: experiment {total:.1f} s (probe {result.wall_s['probe']:.1f} s, "
          f"train {result.wall_s['train']:.1f} s)")
    print(f"  evaluation rounds (parent-scored)  {trust['eval_rounds_s']:7.2f} s  "
          f"{100 * trust['eval_rounds_s'] / total:5.2f}%")
    print(f"  perturbed copies ({trust['causality_checks']:3d} compared)  {trust['checks_s']:7.2f} s  "
          f"{100 * trust['checks_s'] / total:5.2f}%  (goal <= 5%)")
    print(f"  float64 probe phase                {result.wall_s['probe']:7.2f} s  "
          f"{100 * result.wall_s['probe'] / total:5.2f}%")
    print(f"  CPU seconds (supervisor)           {trust['cpu_s']:7.1f} s  ({trust['cpu_s_per_step']:.3f} per step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--checks", action="store_true", help="measure one evaluation's trust checks instead")
    parser.add_argument("--candidate", type=Path, help="candidate file for --checks (default: DeltaNet)")
    args = parser.parse_args()
    if args.checks:
        from archscout.space import baseline_path

        measure_checks(args.preset, args.candidate or baseline_path("deltanet"))
        return
    folder = args.study
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="archscout-overhead-"))
        handle = open_study(folder, {"preset": args.preset, "budget": args.budget, "baseline_seeds": 1})
        try:
            Loop(handle).run()
        finally:
            handle.close()
    rows = measure(folder)
    if not rows:
        raise SystemExit(f"no finished experiments in {folder}")
    totals = [t for t, _ in rows]
    overheads = [t - train for t, train in rows]
    ratios = [o / t for o, (t, _) in zip(overheads, rows)]
    print(f"{len(rows)} finished experiments in {folder}")
    print(f"  median total     {statistics.median(totals):8.1f} s")
    print(f"  median overhead  {statistics.median(overheads):8.1f} s")
    print(f"  median overhead share {100 * statistics.median(ratios):5.1f}%  (goal <= 5%)")


if __name__ == "__main__":
    main()
