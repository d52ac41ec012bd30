"""Loop overhead: wall time per experiment spent on everything except training, vs the total.

    python benchmarks/overhead.py --study DIR                # measure an existing study
    python benchmarks/overhead.py --preset tiny --budget 3   # run a fresh study, then measure

For every finished experiment: total = finished_at - started_at (from the experiment's committed
state transitions); training = the sum of its tasks' training wall time measured inside the worker
(optimiser steps and evaluations). Overhead = total - training: proposing, novelty, sandbox
start-up, probes, data loading, scoring, analysis and the database. Goal: <= 5% of the total.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--budget", type=int, default=3)
    args = parser.parse_args()
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
