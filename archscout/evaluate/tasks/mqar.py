"""Multi-query associative recall (MQAR), as defined by Zoology (Arora et al. 2023, "Zoology:
Measuring and Improving Recall in Efficient Language Models").

A sequence of length L starts with `num_kv_pairs` key-value pairs (k1 v1 k2 v2 ...): distinct keys
from the lower half of the vocabulary (token 0 excluded), distinct values from the upper half. Every
key is then queried once, in the rest of the sequence, at a gap drawn from a power law (parameter
`power_a`; small values put most queries close to the context, as repeated bigrams are in real text).
Following Zoology, a query is the key alone: the input holds the key at position p and the target at
p is its value. All other positions hold uniformly random tokens from the whole vocabulary and are
not scored (target -100).

This is a vectorised re-implementation with numpy, not Zoology's code; it keeps Zoology's
distributions. Training examples and the test set come from the seeds given by the caller
(see `archscout.evaluate.tasks`); nothing is cached on disk.
"""

from __future__ import annotations

import numpy as np

from archscout.config import TaskSpec
from archscout.evaluate.tasks.common import IGNORE, TaskDataError


def check_spec(spec: TaskSpec) -> None:
    n, L, V = spec.num_kv_pairs, spec.seq_len, spec.vocab_size
    if n < 1:
        raise TaskDataError(f"task '{spec.name}': num_kv_pairs must be >= 1, got {n}")
    # Zoology's constraint: the query region must hold a query slot per key with room to spare
    if 4 * n > L:
        raise TaskDataError(f"task '{spec.name}': mqar needs seq_len >= 4 * num_kv_pairs ({4 * n}), got {L}")
    if n > V // 2 - 1:
        raise TaskDataError(
            f"task '{spec.name}': vocab_size {V} has only {V // 2 - 1} key tokens for {n} key-value pairs"
        )


def make_generator(spec: TaskSpec):
    """(generate(rng, num_examples, test) -> (x, y), number of value tokens); train and test alike."""
    check_spec(spec)

    def generate(rng: np.random.Generator, num_examples: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
        return mqar_batch(rng, num_examples, spec.seq_len, spec.vocab_size, spec.num_kv_pairs, spec.power_a)

    return generate, spec.vocab_size - spec.vocab_size // 2


def sample_distinct(rng: np.random.Generator, num_rows: int, choices: int, k: int) -> np.ndarray:
    """k distinct integers from [0, choices) per row, in uniformly random order: [num_rows, k]."""
    if k * k <= 2 * choices:
        # sparse case (large vocabularies): iid draws, redrawing rows with a repeat; a row is
        # accepted with probability >= ~exp(-1), and accepted rows are uniform ordered k-subsets
        out = rng.integers(0, choices, size=(num_rows, k))
        redo = np.arange(num_rows)
        while len(redo):
            s = np.sort(out[redo], axis=1)
            redo = redo[(s[:, 1:] == s[:, :-1]).any(axis=1)]
            out[redo] = rng.integers(0, choices, size=(len(redo), k))
        return out
    scores = rng.random((num_rows, choices))
    # the k smallest of iid uniforms are a uniform k-subset; sorting by score gives a random order
    idx = np.argpartition(scores, k - 1, axis=1)[:, :k] if k < choices else np.tile(np.arange(choices), (num_rows, 1))
    order = np.argsort(np.take_along_axis(scores, idx, axis=1), axis=1)
    return np.take_along_axis(idx, order, axis=1)


def power_law_gaps(rng: np.random.Generator, num_rows: int, space: int, k: int, power_a: float) -> np.ndarray:
    """k distinct gaps in [0, space) per row, drawn without replacement with p(g) ~ (g+1)^(a-1).

    Draws are in selection order, like `np.random.choice(replace=False, p=...)` in Zoology: the
    Efraimidis-Spirakis keys Exp(1)/p, sorted ascending, are a sequential weighted sample.
    """
    p = power_a * np.arange(1, space + 1, dtype=np.float64) ** (power_a - 1)
    p /= p.sum()
    keys = rng.exponential(size=(num_rows, space)) / p
    idx = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < space else np.tile(np.arange(space), (num_rows, 1))
    order = np.argsort(np.take_along_axis(keys, idx, axis=1), axis=1)
    return np.take_along_axis(idx, order, axis=1)


def mqar_batch(
    rng: np.random.Generator, num_examples: int, seq_len: int, vocab_size: int, num_kv_pairs: int, power_a: float
) -> tuple[np.ndarray, np.ndarray]:
    """x, y int64 [num_examples, seq_len]; y = value at each query position, -100 elsewhere."""
    B, L, n = num_examples, seq_len, num_kv_pairs
    half = vocab_size // 2
    context = 2 * n
    keys = 1 + sample_distinct(rng, B, half - 1, n)  # [B, n] in [1, V/2)
    values = half + sample_distinct(rng, B, vocab_size - half, n)  # [B, n] in [V/2, V)
    gaps = power_law_gaps(rng, B, (L - context) // 2, n, power_a)  # [B, n]; gap j belongs to key j

    # random filler everywhere first (Zoology's random_non_queries), then the structure on top
    x = rng.integers(0, vocab_size, size=(B, L), dtype=np.int64)
    x[:, 0:context:2] = keys
    x[:, 1:context:2] = values
    y = np.full((B, L), IGNORE, dtype=np.int64)
    query_pos = context + 2 * gaps  # [B, n]; even offsets, so queries never collide
    rows = np.arange(B)[:, None]
    x[rows, query_pos] = keys
    y[rows, query_pos] = values
    return x, y
