"""Determinism figures: one baseline evaluated several times at a preset, and the spread per metric.

    python benchmarks/determinism.py [--preset nano] [--baseline deltanet] [--seed 0] [--runs 2]
                                     [--threads N] [--fresh-key]

Evaluates the baseline (probes and training in one child) through the ordinary sandboxed path
(`archscout.evaluate.runner.evaluate`) `--runs` times with the preset's thread count,
then optionally once more with `--threads N` OpenMP threads, and once more with a fresh cache whose
held-out key differs (`--fresh-key`: what another machine gets, since each cache draws its own
secret key for the synthetic test sets). Prints, per scored metric, each run's value and the spread
(max - min) within the same-threads runs and against each extra run, then one line per group: how many
numbers (curves point by point) are bit-identical. Wall-clock seconds per run are printed but are
not scored.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from archscout.calibration.determinism import scored_numbers, spread
from archscout.config import get_preset
from archscout.evaluate.runner import evaluate
from archscout.evaluate.scoring import heldout_dir
from archscout.evaluate.tasks import default_cache_dir
from archscout.space import baseline_path

# wide enough that the table is not truncated when the output goes to a file
console = Console(width=200)


def _run(label: str, preset, seed: int, baseline: str, cache_dir: Path | None = None) -> dict[str, float]:
    started = time.perf_counter()
    result = evaluate(baseline_path(baseline), preset, seed=seed, cache_dir=cache_dir)
    wall = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"{label}: the run failed: {result.failure.kind.value}: {result.failure.message}")
    console.print(f"  {label:<28} done in {wall:.0f} s (threads {preset.num_threads})", highlight=False)
    return scored_numbers(result)


def _fresh_cache(tmp: Path) -> Path:
    # the tokenizer and corpus are reused (deterministic from the corpus); only the held-out key is new
    src = default_cache_dir()
    dst = tmp / "cache"
    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if Path(d, n) == heldout_dir(src)])
    return dst


def _fmt(v: float | None) -> str:
    # full precision: a spread of one ulp must be visible
    return "—" if v is None else repr(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nano")
    parser.add_argument("--baseline", default="deltanet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="one extra run with this many threads")
    parser.add_argument("--fresh-key", action="store_true", help="one extra run with a new held-out key")
    parser.add_argument("--curves", action="store_true", help="print every curve point, not only the headline")
    args = parser.parse_args()

    preset = get_preset(args.preset)
    console.print(f"{args.baseline} at {preset.name}, seed {args.seed}: {args.runs} runs with {preset.num_threads} threads", highlight=False)
    labels, runs = [], []
    for i in range(args.runs):
        labels.append(f"run {i + 1}")
        runs.append(_run(labels[-1], preset, args.seed, args.baseline))
    extra = []
    if args.threads is not None:
        labels.append(f"{args.threads} threads")
        runs.append(_run(labels[-1], preset.model_copy(update={"num_threads": args.threads}), args.seed, args.baseline))
        extra.append(len(runs) - 1)
    if args.fresh_key:
        with tempfile.TemporaryDirectory(prefix="archscout-det-") as tmp:
            labels.append("fresh held-out key")
            runs.append(_run(labels[-1], preset, args.seed, args.baseline, _fresh_cache(Path(tmp))))
        extra.append(len(runs) - 1)

    same = spread(runs[: args.runs])
    against = {i: spread([runs[0], runs[i]]) for i in extra}
    table = Table(title=f"scored numbers · {args.baseline} · {preset.name} · seed {args.seed}", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for label in labels:
        table.add_column(label, justify="right")
    table.add_column("spread (same threads)", justify="right")
    for i in extra:
        table.add_column(f"Δ {labels[i]}", justify="right")
    for key in same:
        if "@" in key and not args.curves:
            continue
        table.add_row(key, *[_fmt(r.get(key)) for r in runs], _fmt(same[key]), *[_fmt(against[i].get(key)) for i in extra])
    console.print(table)

    def identical(diffs: dict[str, float]) -> str:
        n_same = sum(1 for v in diffs.values() if v == 0)
        return f"{n_same}/{len(diffs)} numbers bit-identical"

    console.print(f"same threads ({args.runs} runs): {identical(same)}", highlight=False)
    for i in extra:
        moved = [k for k, v in against[i].items() if v != 0 and "@" not in k]
        console.print(f"run 1 vs {labels[i]}: {identical(against[i])}; headline metrics that moved: {', '.join(moved) or 'none'}", highlight=False)


if __name__ == "__main__":
    main()
