"""The ASI-Arch fitness of one evaluated candidate (paper §3.3), measured against a baseline reference.

    fitness = mean(σ(Δloss), σ(Δbench), judge)

Each Δ is the candidate's relative improvement over the baseline's mean across K seeds, clipped to
±`window` and mapped by σ(k·Δ): Δ = 0 gives 0.5 and, with the defaults (window 0.10, k = 50), the
window's edges give σ(±5) ≈ 0.0067 / 0.9933, so gains beyond 10% stop paying (the paper's guard
against reward hacking by one metric).

`judge` is the paper's architectural-quality score in [0, 1]. Offline there is no LLM, so the
"efficiency" judge is a measured stand-in: the mean of σ-mapped relative throughput and relative
parameter economy (baseline params / candidate params), same window and steepness. An "llm" judge
score is passed in by the caller; when it is absent (the call failed) the term is left out and
`judge_kind` says "missing" instead of a default value filling the gap.

This module scores one result against a reference. It does not decide significance (stats.py) or
reject anything: the loss-leak alarm is reported for the caller to act on.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from archscout.records import RunResult

# A baseline benchmark accuracy below this is "zero": relative change would divide by ~0, so the
# bench Δ becomes the absolute difference in accuracy instead.
BENCH_ZERO = 1e-3


class FitnessConfig(BaseModel):
    window: float = Field(0.10, gt=0)  # |Δ| is clipped to this before the sigmoid
    steepness: float = Field(50.0, gt=0)  # k in σ(k·Δ); 50 maps the window's edges to σ(±5)
    judge: Literal["efficiency", "llm"] = "efficiency"
    # The paper's heuristic: a loss this far (relative) below the baseline suggests a causality leak.
    leak_threshold: float = Field(0.10, gt=0)


class BaselineRef(BaseModel):
    """Means and standard deviations (ddof=1; 0 for one run) of the baseline over its seeds."""

    n: int  # successful baseline runs the statistics come from
    val_loss_mean: float
    val_loss_std: float
    benchmark_mean: float | None = None  # None when the preset has no synthetic tasks
    benchmark_std: float | None = None
    tokens_per_s_mean: float | None = None
    tokens_per_s_std: float | None = None
    params_mean: float | None = None
    params_std: float | None = None


class FitnessBreakdown(BaseModel):
    fitness: float  # mean of the terms that are not None
    loss_term: float
    bench_term: float | None  # None: no benchmark in this preset
    judge_term: float | None  # None: judge_kind == "missing"
    judge_kind: Literal["efficiency", "llm", "missing"]
    delta_loss: float  # (base - cand) / base, unclipped; > 0 is better
    delta_bench: float | None  # relative (absolute when the baseline is ~0), unclipped
    judge_parts: dict[str, float] = Field(default_factory=dict)  # efficiency: throughput, params
    leak_alarm: bool  # delta_loss > leak_threshold


def sigmoid_term(delta: float, config: FitnessConfig) -> float:
    """σ(k · clip(Δ, ±window)), in (0, 1); 0.5 at Δ = 0."""
    x = config.steepness * min(max(delta, -config.window), config.window)
    # Written for either sign so that a large k cannot overflow exp().
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return float(arr.mean()), std


def baseline_ref_from_runs(runs: list[RunResult]) -> BaselineRef:
    """Reference statistics from the baseline's seed runs; failed runs and runs without a val loss
    are left out. Raises ValueError when no run is usable."""
    ok = [r for r in runs if r.ok and r.val_loss is not None]
    if not ok:
        raise ValueError("no successful baseline run with a validation loss")
    loss_mean, loss_std = _stats([r.val_loss for r in ok])
    bench_mean, bench_std = _stats([r.benchmark for r in ok if r.benchmark is not None])
    tps_mean, tps_std = _stats([r.tokens_per_s for r in ok if r.tokens_per_s])
    params_mean, params_std = _stats([float(r.params) for r in ok if r.params])
    return BaselineRef(
        n=len(ok),
        val_loss_mean=loss_mean,
        val_loss_std=loss_std,
        benchmark_mean=bench_mean,
        benchmark_std=bench_std,
        tokens_per_s_mean=tps_mean,
        tokens_per_s_std=tps_std,
        params_mean=params_mean,
        params_std=params_std,
    )


def delta_loss(cand: float, base: float) -> float:
    return (base - cand) / base


def delta_bench(cand: float, base: float) -> float:
    if abs(base) < BENCH_ZERO:
        return cand - base
    return (cand - base) / abs(base)


def efficiency_judge(cand: RunResult, base: BaselineRef, config: FitnessConfig) -> dict[str, float]:
    """σ-mapped relative throughput and parameter economy; a part is left out when either side
    lacks the number. Empty when neither can be measured."""
    parts: dict[str, float] = {}
    if cand.tokens_per_s and base.tokens_per_s_mean:
        rel = (cand.tokens_per_s - base.tokens_per_s_mean) / base.tokens_per_s_mean
        parts["throughput"] = sigmoid_term(rel, config)
    if cand.params and base.params_mean:
        # Fewer parameters than the baseline is the improvement: base/cand - 1 > 0.
        parts["params"] = sigmoid_term(base.params_mean / cand.params - 1.0, config)
    return parts


def compute_fitness(
    cand: RunResult,
    base: BaselineRef,
    config: FitnessConfig | None = None,
    judge_score: float | None = None,
) -> FitnessBreakdown:
    """Fitness of one successful run. `judge_score` (in [0, 1]) is used only when config.judge is
    "llm"; None there means the judge failed and the term is recorded as missing."""
    config = config or FitnessConfig()
    if not cand.ok or cand.val_loss is None:
        raise ValueError("fitness needs a successful run with a validation loss")
    d_loss = delta_loss(cand.val_loss, base.val_loss_mean)
    loss_term = sigmoid_term(d_loss, config)

    d_bench = bench_term = None
    if cand.benchmark is not None and base.benchmark_mean is not None:
        d_bench = delta_bench(cand.benchmark, base.benchmark_mean)
        bench_term = sigmoid_term(d_bench, config)

    parts: dict[str, float] = {}
    judge_term, judge_kind = None, "missing"
    if config.judge == "llm" and judge_score is not None:
        if not 0.0 <= judge_score <= 1.0:
            raise ValueError(f"judge score must lie in [0, 1], got {judge_score}")
        judge_term, judge_kind = float(judge_score), "llm"
    elif config.judge == "efficiency":
        parts = efficiency_judge(cand, base, config)
        if parts:
            judge_term, judge_kind = float(np.mean(list(parts.values()))), "efficiency"

    terms = [t for t in (loss_term, bench_term, judge_term) if t is not None]
    return FitnessBreakdown(
        fitness=float(np.mean(terms)),
        loss_term=loss_term,
        bench_term=bench_term,
        judge_term=judge_term,
        judge_kind=judge_kind,
        delta_loss=d_loss,
        delta_bench=d_bench,
        judge_parts=parts,
        leak_alarm=d_loss > config.leak_threshold,
    )
