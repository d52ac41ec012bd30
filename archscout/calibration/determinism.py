"""Determinism of an evaluation: the scored numbers of a run, and their spread over repeated runs.

`scored_numbers` flattens a `RunResult` into every number that enters (or is shown beside) fitness:
the LM validation loss and its split into associative-recall hits and other tokens, each synthetic
task's final accuracy and accuracy AUC, the benchmark, the step counts, every point of the
evaluation and training curves, and the parameter counts. Two runs
of the same (candidate, preset, seed) with the preset's thread count must give identical dicts;
`spread` reports, per number, the largest difference between runs so that a benchmark can print
which numbers move and by how much. Wall-clock figures (tokens/s, seconds) are left out on purpose:
they measure the machine, not the candidate, and are never scored.

What is not here: running the evaluations (tests/evaluate/test_determinism.py and
benchmarks/determinism.py call `archscout.evaluate.runner.evaluate`).
"""

from __future__ import annotations

import math

from archscout.records import RunResult


def scored_numbers(result: RunResult) -> dict[str, float]:
    """metric name -> value for every scored or step-count figure of one run (curves point by point)."""
    out: dict[str, float] = {}
    for key in ("val_loss", "ar_hit_loss", "benchmark", "params", "total_params"):
        value = getattr(result, key)
        if value is not None:
            out[key] = float(value)
    for name, task in sorted(result.tasks.items()):
        for key in ("val_loss", "ar_hit_loss", "other_loss", "ar_hits", "accuracy", "accuracy_auc", "steps_done", "steps_planned", "params"):
            value = getattr(task, key)
            if value is not None:
                out[f"{name}.{key}"] = float(value)
        for curve in ("eval_curve", "train_curve"):
            for point in getattr(task, curve):
                out[f"{name}.{curve}@{point.step}"] = float(point.value)
    return out


def spread(runs: list[dict[str, float]]) -> dict[str, float]:
    """metric -> max - min over the runs (NaN when a run lacks the metric: a structural difference)."""
    keys = sorted(set().union(*runs)) if runs else []
    out = {}
    for key in keys:
        values = [r.get(key) for r in runs]
        if any(v is None for v in values):
            out[key] = math.nan
        else:
            out[key] = max(values) - min(values)
    return out


def summary_rows(runs: list[dict[str, float]]) -> list[tuple[str, list[float | None], float]]:
    """(metric, values per run, spread) for the headline metrics and every curve; headline first."""
    diffs = spread(runs)
    headline = [k for k in diffs if "@" not in k]
    curves = [k for k in diffs if "@" in k]
    return [(k, [r.get(k) for r in runs], diffs[k]) for k in headline + curves]
