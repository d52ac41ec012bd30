"""Cognition-base retrieval cost: loading, the first search (which embeds every entry's trigger)
and the median query after it, for the backend `auto` picks (hybrid BM25 + MiniLM when the model
wheel is installed) and for BM25 alone.

    python benchmarks/cognition_lookup.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from archscout.cognition.index import CognitionBase

QUERIES = [
    "recall accuracy on MQAR collapses as the number of key-value pairs grows",
    "loss diverges as the state norm grows over long sequences",
    "throughput far below the baseline because of a token-by-token loop",
    "the model cannot track parity or counting",
]


def measure(backend: str, repeats: int) -> None:
    start = time.perf_counter()
    base = CognitionBase.load(backend=backend)
    loaded = time.perf_counter()
    base.search(QUERIES[0], 3)
    first = time.perf_counter()
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        base.search(QUERIES[i % len(QUERIES)], 3)
        times.append(time.perf_counter() - t0)
    print(f"{base.backend:>6} ({len(base)} entries): load {loaded - start:.2f} s, first search {first - loaded:.2f} s, "
          f"median query {statistics.median(times) * 1000:.1f} ms (n={repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    measure("auto", args.repeats)
    measure("bm25", args.repeats)


if __name__ == "__main__":
    main()
