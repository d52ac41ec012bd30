"""Time the study database's hot reads at scale: pool sampling, pool re-ranking, novelty lookup.

Builds a SQLite study database with N synthetic architectures (default 100,000), each with an
explore score, then prints the median wall and CPU time in ms of:

- sample (top):    drawing a parent and references from the latest pool version
- sample (random): drawing a parent uniformly from every scored architecture
- pool update:     re-ranking the pool (top-50 by fitness) and storing the new version
- norm_hash:       looking up architectures by normalised-code hash (the novelty check)

The goal is <= 20 ms for sampling and lookup. Usage:

    python benchmarks/pool_lookup.py [--n 100000] [--reps 200] [--dir DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from archscout.records import code_hash
from archscout.store import PoolPolicy, init_pool, maybe_update, open_study_db, sample
from archscout.store import schema as s

PRESET = "bench"


def populate(db, n: int, rng: random.Random) -> None:
    now = s.utcnow()
    batch = 10_000
    with db.transaction() as tx:
        for start in range(0, n, batch):
            archs, scores = [], []
            for i in range(start + 1, min(n, start + batch) + 1):
                # ~300 characters, about a tenth of a real candidate: the lookups never read code
                code = f"class Mixer{i}(nn.Module):\n    # synthetic\n" + "    pass\n" * 28
                archs.append(
                    dict(
                        id=i, name=f"mixer-{i}", parent_id=rng.randint(1, i - 1) if i > 1 else None,
                        code=code, code_hash=code_hash(code), norm_hash=f"norm-{i:08d}",
                        motivation="", origin="offline", created_at=now,
                    )
                )
                scores.append(
                    dict(
                        architecture_id=i, stage="explore", preset=PRESET,
                        fitness=rng.random(), components={"loss_term": 0.0}, created_at=now,
                    )
                )
            tx.execute(insert(s.architectures), archs)
            tx.execute(insert(s.scores), scores)


def median_ms(fn, reps: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `fn`; CPU time is the robust one on a loaded machine."""
    wall, cpu = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="study folder to keep (default: a temp dir, removed after)")
    args = parser.parse_args()
    if args.dir is not None:
        run(args, args.dir)
        return
    with tempfile.TemporaryDirectory(prefix="archscout-bench-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, folder: Path) -> None:
    rng = random.Random(0)
    db = open_study_db(folder)
    t0 = time.perf_counter()
    populate(db, args.n, rng)
    elapsed = time.perf_counter() - t0
    print(f"populated {args.n:,} architectures + scores in {elapsed:.1f} s ({folder})")

    init_pool(db, list(range(1, 4)), preset=PRESET)
    policy = PoolPolicy(cold_start=0, update_every=1)
    done = iter(range(1, 10**9))
    update_ms = median_ms(
        lambda: maybe_update(db, policy, next(done), preset=PRESET), max(20, args.reps // 10)
    )
    top_ms = median_ms(lambda: sample(db, policy, rng, preset=PRESET), args.reps)
    random_policy = policy.model_copy(update={"selection": "random"})
    random_ms = median_ms(lambda: sample(db, random_policy, rng, preset=PRESET), args.reps)
    lookup_ms = median_ms(
        lambda: db.architectures_by_norm_hash(f"norm-{rng.randint(1, args.n):08d}"), args.reps
    )
    db.close()

    print(f"{'operation':<18}{'wall ms':>10}{'cpu ms':>10}   (medians)")
    for name, (wall, cpu) in [
        ("sample (top)", top_ms),
        ("sample (random)", random_ms),
        ("pool update", update_ms),
        ("norm_hash lookup", lookup_ms),
    ]:
        print(f"{name:<18}{wall:>10.2f}{cpu:>10.2f}")

if __name__ == "__main__":
    main()
