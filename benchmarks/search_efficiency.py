"""Does the search beat random parents at equal compute? Three policies, the same CPU budget each.

    python benchmarks/search_efficiency.py --preset nano --cpu-hours 0.5 --studies 3 [--out DIR]
    python benchmarks/search_efficiency.py --preset smoke --cpu-hours 0.01 --studies 1   # a smoke run

Policies (same offline proposer, preset and study seeds 0, 1, ...):
- `single`: ASI-Arch's pool on single runs (pool.ranking = "single", top-10 / 11-50 parents);
- `ladder`: the ladder with posterior ranking (pool.ranking = "posterior"; `--rungs`, default the
  preset alone: one run per new candidate, extra seeds for the top fraction of each batch);
- `random`: random parents (the scientific control), single-run ranking;
- `thompson` (not in the default list): the ladder with Thompson sampling for parents
  (pool.selection) and for the rung's extra seeds (ladder.promote).
Each study runs until the `--cpu-hours` stopping rule fires (CPU seconds the supervisor measured for
every run: baseline, exploration, promotion; not wall time, which other load on the machine moves),
so the policies are compared at equal compute, not equal experiment count. Then each study verifies
its own `--verify-top` best (by posterior mean for `ladder`, by single run for the others) over
`--seeds` fresh seeds against the baseline (verify.py: Welch, BH), outside the budget and the same way
for every policy. Prints per policy, as a mean over studies with a 95 % t interval: the best verified
effect vs the baseline on the primary metric, verified discoveries, experiments run, CPU-hours used,
the share of that compute spent on promotion runs and, for the ladder policies, how many exploration
"winners" the ladder demoted before verification: of the `--verify-top` best single exploration runs
(what the single-run pool would have sent to verification), those its posterior ranking did not send.
Study folders are kept under --out.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from scipy import stats

from archscout.config import get_preset
from archscout.ladder import pool_ranking
from archscout.loop import Loop
from archscout.stopping import StopRules
from archscout.study import open_study
from archscout.verify import Verifier

POLICIES = {
    "single": {"pool.ranking": "single", "pool.selection": "top"},
    "ladder": {"pool.ranking": "posterior", "pool.selection": "top"},
    "random": {"pool.ranking": "single", "pool.selection": "random"},
    "thompson": {"pool.ranking": "posterior", "pool.selection": "thompson", "ladder.promote": "thompson"},
}
LADDERS = ("ladder", "thompson")


def _interval(values: list[float], digits: int = 4) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "none"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f} (n=1)"
    if statistics.pstdev(values) == 0:
        return f"{mean:.{digits}f} [all equal] (n={len(values)})"
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] (n={len(values)})"


def _cpu_s(run) -> float:
    return float(run.result.trust.get("cpu_s") or 0.0)


def run_one(folder: Path, policy: str, seed: int, args) -> dict:
    config = {"preset": args.preset, "budget": args.max_experiments, "seed": seed, "baseline_seeds": args.baseline_seeds,
              "verify.top": args.verify_top, "verify.seeds": args.seeds, "novelty.backend": "bm25", **POLICIES[policy]}
    if policy in LADDERS:
        # verification is done below for every policy alike, so the ladder's budget buys search only
        config.update({"ladder.rungs": args.rungs or [args.preset], "ladder.verify": False,
                       "ladder.promote_every": args.promote_every, "ladder.top_fraction": args.top_fraction,
                       "ladder.seeds": args.ladder_seeds})
    if args.presets_file:
        config["presets_file"] = str(args.presets_file.resolve())
    # a [pool] table replaces the preset's pool scale: keep the preset's cold start and cadence
    scale = get_preset(args.preset, args.presets_file).pool
    config.update({"pool.cold_start": scale.cold_start, "pool.update_every": scale.update_every})
    handle = open_study(folder, config)
    try:
        loop = Loop(handle)
        loop.stop_rules = StopRules(cpu_hours=args.cpu_hours)
        loop.run()
        timeline = handle.db.run_timeline()
        search = [r for r in timeline if r.stage in ("explore", "promote")]
        cpu = sum(_cpu_s(r) for r in search)
        promote = sum(_cpu_s(r) for r in search if r.stage == "promote")
        baseline = {a.id for a in handle.db.architectures_by_origin("baseline")}
        winners = [a for a, _ in handle.db.top_scores("explore", handle.preset.name, args.verify_top + 1)
                   if a not in baseline][: args.verify_top]
        if policy in LADDERS:
            ids = [a for a, _, _ in pool_ranking(handle) if a not in baseline][: args.verify_top]
        else:
            ids = winners
        verdicts = Verifier(handle).run(ids=ids) if ids else {"architectures": []}
        primary = handle.config.verify.rule.primary
        effects = [row["comparisons"][primary]["effect"] for row in verdicts["architectures"]
                   if primary in row["comparisons"]]
        counts = handle.db.experiments.counts_by_state()
        return {"best_effect": max(effects) if effects else None,
                "discoveries": sum(row["verdict"]["discovery"] for row in verdicts["architectures"]),
                "experiments": sum(counts.values()), "cpu_h": cpu / 3600, "promote_share": promote / cpu if cpu else 0.0,
                "winners_demoted": len(set(winners) - set(ids)) if policy in LADDERS else None,
                "stopped_by": loop.stopped_by}
    finally:
        handle.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nano")
    parser.add_argument("--cpu-hours", type=float, default=0.5, help="search compute per study (all policies)")
    parser.add_argument("--max-experiments", type=int, default=1000, help="experiment cap (the CPU budget binds first)")
    parser.add_argument("--studies", type=int, default=3)
    parser.add_argument("--policies", default="single,ladder,random")
    parser.add_argument("--rungs", nargs="*", help="ladder rungs (default: the preset alone)")
    parser.add_argument("--promote-every", type=int, default=4)
    parser.add_argument("--top-fraction", type=float, default=0.25)
    parser.add_argument("--ladder-seeds", type=int, default=3)
    parser.add_argument("--verify-top", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--baseline-seeds", type=int, default=3)
    parser.add_argument("--presets-file", type=Path, help="a TOML file with extra presets")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="archscout-search-"))
    policies = args.policies.split(",")
    results = {p: [run_one(out / f"{p}-{seed}", p, seed, args) for seed in range(args.studies)] for p in policies}
    print(f"preset {args.preset}, {args.cpu_hours:g} CPU-hours of search per study, {args.studies} studies per "
          f"policy, verification: top {args.verify_top} x {args.seeds} fresh seeds; folders in {out}")
    print(f"{'policy':<8} {'best verified effect (95% CI)':<40} {'discoveries':<28} {'experiments':<26} "
          f"{'CPU-h':<26} {'promotion share':<26} winners demoted before verification")
    for policy, rows in results.items():
        def col(key: str, d: int = 4, rows: list[dict] = rows) -> str:
            return _interval([r[key] for r in rows], d)

        print(f"{policy:<8} {col('best_effect'):<40} {col('discoveries', 2):<28} {col('experiments', 1):<26} "
              f"{col('cpu_h', 3):<26} {col('promote_share', 2):<26} "
              f"{col('winners_demoted', 2) if policy in LADDERS else '— (verifies its single-run winners)'}")


if __name__ == "__main__":
    main()
