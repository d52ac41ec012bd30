"""Evolution vs random search at equal budget: is the pool doing anything?

    python benchmarks/search_efficiency.py --preset tiny --budget 12 --studies 2 [--out DIR]
    python benchmarks/search_efficiency.py --presets-file my_presets.toml --preset NAME ...

Runs `--studies` independent studies (study seeds 0, 1, ...) for each parent-selection policy —
`top` (the ASI-Arch pool) and `random` (the scientific control) — with the same proposer, preset
and budget, then verifies each study's top `--verify-top` architectures over fresh seeds. Prints,
per policy, the best exploration fitness after every `--every` experiments and the best verified
fitness (mean over verification seeds) at the end, each as a mean over studies with a 95% t
interval. Every study folder is kept under --out for inspection.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from scipy import stats

from archscout.loop import Loop
from archscout.study import open_study
from archscout.verify import Verifier


def _interval(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.4f} (n=1)"
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return f"{mean:.4f} [{low:.4f}, {high:.4f}] (n={len(values)})"


def best_by_budget(handle, every: int) -> list[float]:
    """Best exploration fitness among architectures created by experiments 1..k, k = every, 2*every..."""
    rows = []
    for exp in sorted(handle.db.experiments.recent(limit=100_000), key=lambda e: e.seq):
        score = handle.db.score(exp.architecture_id, "explore", handle.preset.name) if exp.architecture_id else None
        rows.append((exp.seq, score.fitness if score else None))
    out, best = [], float("-inf")
    for seq, fitness in rows:
        if fitness is not None:
            best = max(best, fitness)
        if seq % every == 0:
            out.append(best)
    return out


def run_one(folder: Path, policy: str, seed: int, args) -> tuple[list[float], float | None]:
    config = {"preset": args.preset, "budget": args.budget, "seed": seed, "pool.selection": policy,
              "verify.top": args.verify_top, "verify.seeds": args.seeds, "baseline_seeds": args.baseline_seeds}
    if args.presets_file:
        config["presets_file"] = str(args.presets_file.resolve())
    handle = open_study(folder, config)
    try:
        Loop(handle).run()
        verdicts = Verifier(handle).run()
        verified = [row["fitness"] for row in verdicts["architectures"]]
        return best_by_budget(handle, args.every), max(verified) if verified else None
    finally:
        handle.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--studies", type=int, default=2)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--verify-top", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--baseline-seeds", type=int, default=3)
    parser.add_argument("--presets-file", type=Path, help="a TOML file with extra presets")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="archscout-search-"))
    results: dict[str, list[tuple[list[float], float | None]]] = {}
    for policy in ("top", "random"):
        results[policy] = [run_one(out / f"{policy}-{seed}", policy, seed, args) for seed in range(args.studies)]
    print(f"preset {args.preset}, budget {args.budget}, {args.studies} studies per policy, folders in {out}")
    for policy, rows in results.items():
        print(f"{policy}:")
        for i in range(len(rows[0][0])):
            print(f"  best exploration fitness after {(i + 1) * args.every:>3} experiments: "
                  f"{_interval([r[0][i] for r in rows])}")
        verified = [r[1] for r in rows if r[1] is not None]
        print(f"  best verified fitness (top {args.verify_top}, {args.seeds} fresh seeds): "
              f"{_interval(verified) if verified else 'none verified'}")


if __name__ == "__main__":
    main()
