"""Statistics behind a verified discovery: noise floors, Welch comparisons, FDR control, verdicts.

A discovery counts only when a candidate, re-evaluated over seeds, beats the baseline's seed
distribution on the primary metric after Benjamini-Hochberg correction over every architecture the
study has verified, and is not significantly worse on the secondary metric. This module covers:

- `noise_floor`: mean / std / n (`seedstats.seed_stats`) of each of the baseline's metrics over its seeds;
- `compare` / `compare_many`: Welch t-test of candidate vs baseline in the metric's good direction;
- `benjamini_hochberg` and `decide`: the FDR-controlled verdict under a `VerificationRule`;
- `shrinkage`, `rank_fidelity`, `scaling_curve`: how exploration (single runs) relates to verification.

Undefined statistics are NaN (p-values, CIs) or None (summaries that need more points), never a
made-up default; an undefined p-value is never significant. Distributions come from scipy.stats.

It does not read or write the database (the caller passes numbers in) and does not plot.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from archscout.analyze.seedstats import seed_stats

# The direction of each metric the loop records; callers look it up instead of repeating it.
HIGHER_IS_BETTER = {"val_loss": False, "benchmark": True}


class _Model(BaseModel):
    # NaN means "undefined" here; pydantic's default writes it as JSON null, which does not validate
    # back into a float, while "NaN" strings stay valid JSON and round-trip.
    model_config = ConfigDict(ser_json_inf_nan="strings")


def _finite(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what}: need a non-empty list of numbers")
    # A diverged seed (inf / NaN) is a failed run; silently dropping it would flatter the mean.
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: non-finite value in {arr.tolist()}; filter failed runs first")
    return arr


def _std(arr: np.ndarray) -> float:
    return seed_stats(arr).std


class MetricNoise(_Model):
    mean: float
    std: float  # ddof=1; NaN with a single value (the noise is unknown, not zero)
    n: int
    values: list[float]


class NoiseFloor(_Model):
    metrics: dict[str, MetricNoise]


def noise_floor(values_by_metric: Mapping[str, Sequence[float]]) -> NoiseFloor:
    """Per-metric seed statistics of the baseline; metrics with no values are left out."""
    out = {}
    for name, values in values_by_metric.items():
        if len(values) == 0:
            continue
        arr = _finite(values, name)
        mean, std, n = seed_stats(arr)
        out[name] = MetricNoise(mean=mean, std=std, n=n, values=arr.tolist())
    return NoiseFloor(metrics=out)


class Comparison(_Model):
    metric: str = ""
    higher_is_better: bool
    candidate_mean: float
    candidate_std: float  # NaN with one seed
    candidate_n: int
    baseline_mean: float
    baseline_std: float
    baseline_n: int
    effect: float  # improvement in the good direction: > 0 means the candidate is better
    ci_low: float  # Welch-Satterthwaite t interval of `effect` at `ci_level`; NaN when untestable
    ci_high: float
    ci_level: float = 0.95
    p_value: float  # one-sided, H1: candidate better; NaN when untestable
    p_worse: float  # one-sided, H1: candidate worse
    p_two_sided: float
    cohen_d: float  # effect / pooled std; NaN when the pooled std is zero or undefined
    method: str = "welch"


def _welch(x: np.ndarray, y: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Welch statistics of each row of x [A, n] against y [m], both already sign-flipped so that
    larger is better. A row is untestable (NaN) with fewer than 2 values on either side, or with
    zero variance on both sides: then there is no measured noise to judge a difference against."""
    n, m = x.shape[1], y.size
    # Identical values are tested with ptp, not var > 0: the mean of [3.9, 3.9, 3.9] is not exactly
    # 3.9 in floating point, so var would be ~1e-31 and two constant sides would look "significant".
    vx = np.where(np.ptp(x, axis=1) == 0, 0.0, x.var(axis=1, ddof=1)) if n > 1 else np.full(x.shape[0], math.nan)
    vy = (0.0 if np.ptp(y) == 0 else float(y.var(ddof=1))) if m > 1 else math.nan
    effect = x.mean(axis=1) - y.mean()
    out = {k: np.full(x.shape[0], math.nan) for k in ("p_better", "p_worse", "p_two", "lo", "hi")}
    testable = (n >= 2) & (m >= 2) & ((np.nan_to_num(vx) > 0) | (np.nan_to_num(vy) > 0))
    if np.any(testable):
        with warnings.catch_warnings():
            # One constant side (e.g. 100% accuracy on every seed) is legitimate for Welch; scipy
            # still warns about precision loss in its variance, which is ~0 either way.
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            res = stats.ttest_ind(x[testable], y[None, :], axis=1, equal_var=False)
        ci = res.confidence_interval(confidence_level=level)
        out["p_two"][testable] = res.pvalue
        out["p_better"][testable] = stats.t.sf(res.statistic, res.df)
        out["p_worse"][testable] = stats.t.cdf(res.statistic, res.df)
        out["lo"][testable], out["hi"][testable] = ci.low, ci.high
    # A side with one value carries no variance information, so it gets zero weight in the pool.
    wx = (n - 1) * np.nan_to_num(vx) if n > 1 else np.zeros(x.shape[0])
    wy = (m - 1) * vy if m > 1 else 0.0
    pooled = np.sqrt((wx + wy) / (n + m - 2)) if n + m > 2 else np.zeros(x.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["d"] = np.where(pooled > 0, effect / pooled, math.nan)
    out.update(effect=effect, vx=vx)
    return out


def compare_many(
    candidates: Mapping[int, Sequence[float]],
    baseline: Sequence[float],
    higher_is_better: bool,
    alpha: float = 0.05,
    metric: str = "",
) -> dict[int, Comparison]:
    """`compare` for many candidates against one baseline, vectorised over candidates with the same
    number of seeds (the verifier compares a whole batch against one noise floor)."""
    base = _finite(baseline, "baseline")
    sign = 1.0 if higher_is_better else -1.0
    by_n: dict[int, list[int]] = {}
    for key, values in candidates.items():
        by_n.setdefault(len(values), []).append(key)
    out: dict[int, Comparison] = {}
    for keys in by_n.values():
        x = np.stack([_finite(candidates[k], f"candidate {k}") for k in keys])  # [A, n]
        w = _welch(sign * x, sign * base, 1.0 - alpha)
        for i, key in enumerate(keys):
            out[key] = Comparison(
                metric=metric, higher_is_better=higher_is_better,
                candidate_mean=float(x[i].mean()), candidate_std=float(np.sqrt(w["vx"][i])),
                candidate_n=x.shape[1], baseline_mean=float(base.mean()), baseline_std=_std(base),
                baseline_n=base.size, effect=float(w["effect"][i]), ci_low=float(w["lo"][i]),
                ci_high=float(w["hi"][i]), ci_level=1.0 - alpha, p_value=float(w["p_better"][i]),
                p_worse=float(w["p_worse"][i]), p_two_sided=float(w["p_two"][i]), cohen_d=float(w["d"][i]),
            )
    return {k: out[k] for k in candidates}


def compare(
    candidate: Sequence[float], baseline: Sequence[float], higher_is_better: bool, alpha: float = 0.05,
    metric: str = "",
) -> Comparison:
    """Welch comparison of a candidate's seed values with the baseline's; the CI level is 1 - alpha.
    One seed on either side, or zero variance on both, gives NaN p-values and CI (not significant)."""
    return compare_many({0: candidate}, baseline, higher_is_better, alpha, metric)[0]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values). A NaN p is counted as a test with p = 1, so an untestable
    architecture still costs the others their share of the FDR budget, and its q stays NaN."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    missing = np.isnan(p)
    if np.any((p[~missing] < 0) | (p[~missing] > 1)):
        raise ValueError(f"p-values must lie in [0, 1]: {p.tolist()}")
    adjusted = stats.false_discovery_control(np.where(missing, 1.0, p), method="bh")
    adjusted[missing] = math.nan
    return adjusted.tolist()


class VerificationRule(_Model):
    """How a verified candidate becomes a discovery; stored with the study so verdicts can be redone."""

    primary: Literal["val_loss", "benchmark"] = "val_loss"
    secondary: str | None = None  # default: the other metric; None (explicit) disables the guard
    q: float = Field(0.1, gt=0, le=1)  # FDR level for the primary metric over all verified archs
    alpha_worse: float = Field(0.05, gt=0, lt=1)  # one-sided level: secondary p_worse below it blocks
    min_seeds: int = Field(3, ge=2)  # fewer seeds on either side is never a discovery

    @model_validator(mode="before")
    @classmethod
    def _other_metric_by_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secondary" not in data:
            primary = data.get("primary", "val_loss")
            data = {**data, "secondary": "benchmark" if primary == "val_loss" else "val_loss"}
        return data

    @model_validator(mode="after")
    def _distinct(self) -> VerificationRule:
        if self.secondary == self.primary:
            raise ValueError("secondary metric must differ from the primary")
        return self


class Verdict(_Model):
    discovery: bool
    q_value: float  # BH-adjusted primary p over all architectures passed to `decide`; NaN: untestable
    p_value: float  # the primary's raw one-sided p
    effect: float  # the primary's improvement (NaN when the primary is missing)
    worse_on_secondary: bool
    reason: str  # one line for the report


def _g(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3g}"


def decide(comparisons_by_arch: Mapping[int, Mapping[str, Comparison]], rule: VerificationRule) -> dict[int, Verdict]:
    """Verdicts for every architecture. Pass all architectures ever verified in the study: the BH
    correction is over all of them, so verifying more candidates raises the bar for each."""
    ids = list(comparisons_by_arch)
    primaries = [comparisons_by_arch[a].get(rule.primary) for a in ids]
    qs = benjamini_hochberg([c.p_value if c is not None else math.nan for c in primaries])
    verdicts = {}
    for arch, c, q in zip(ids, primaries, qs):
        if c is None:
            verdicts[arch] = Verdict(discovery=False, q_value=q, p_value=math.nan, effect=math.nan,
                                     worse_on_secondary=False, reason=f"no {rule.primary} comparison")
            continue
        parts = []
        ci = f"[{_g(c.ci_low)}, {_g(c.ci_high)}]"
        head = (f"{rule.primary} improves by {_g(c.effect)} {ci}" if c.effect > 0
                else f"{rule.primary} does not improve ({_g(c.effect)} {ci})")
        if math.isnan(q):
            parts.append(f"{head}, q undefined (one seed or zero variance)")
        else:
            parts.append(f"{head}, q={_g(q)} {'≤' if q <= rule.q else '>'} {rule.q:g}")
        sec = comparisons_by_arch[arch].get(rule.secondary) if rule.secondary else None
        # NaN p_worse compares False: an untestable secondary cannot block (nor does it vouch).
        worse = sec is not None and sec.p_worse < rule.alpha_worse
        if rule.secondary is None:
            parts.append("no secondary metric in the rule")
        elif sec is None:
            parts.append(f"{rule.secondary} not measured, ignored")
        else:
            parts.append(f"{rule.secondary} {'significantly worse' if worse else 'not worse'} (p={_g(sec.p_worse)})")
        few = min(c.candidate_n, c.baseline_n) < rule.min_seeds
        if few:
            parts.append(f"too few seeds (candidate {c.candidate_n}, baseline {c.baseline_n}) < {rule.min_seeds}")
        discovery = c.effect > 0 and q <= rule.q and not worse and not few
        verdicts[arch] = Verdict(discovery=discovery, q_value=q, p_value=c.p_value, effect=c.effect,
                                 worse_on_secondary=worse, reason="; ".join(parts))
    return verdicts


class ShrinkageRow(_Model):
    arch_id: int
    explore: float  # exploration Δ (single run)
    verify: float  # verification Δ (mean over seeds)
    shrink: float  # explore - verify: how much of the exploration gain was luck


class ShrinkageReport(_Model):
    rows: list[ShrinkageRow]
    mean_shrinkage: float | None  # None with no common ids
    winners: int  # exploration winners: explore Δ > 0
    winners_kept: int  # of those, verify Δ > 0 (and a discovery when verdicts are given)
    kept_fraction: float | None  # None with no winners
    slope: float | None  # least-squares verify ≈ slope·explore + intercept; None under 3 points
    intercept: float | None


def shrinkage(
    explore_delta: Mapping[int, float], verify_delta: Mapping[int, float],
    verdicts: Mapping[int, Verdict] | None = None,
) -> ShrinkageReport:
    """Regression to the mean from exploration to verification, over the ids present in both."""
    ids = [a for a in explore_delta if a in verify_delta]
    x = np.array([explore_delta[a] for a in ids], dtype=float)
    y = np.array([verify_delta[a] for a in ids], dtype=float)
    rows = [ShrinkageRow(arch_id=a, explore=float(e), verify=float(v), shrink=float(e - v)) for a, e, v in zip(ids, x, y)]
    winners = [a for a, e in zip(ids, x) if e > 0]
    kept = [a for a in winners if verify_delta[a] > 0
            and (verdicts is None or (a in verdicts and verdicts[a].discovery))]
    slope = intercept = None
    # A constant explore Δ has no slope; polyfit would only warn and return noise.
    if len(ids) >= 3 and np.ptp(x) > 0:
        slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    return ShrinkageReport(
        rows=rows, mean_shrinkage=float(np.mean(x - y)) if ids else None,
        winners=len(winners), winners_kept=len(kept),
        kept_fraction=len(kept) / len(winners) if winners else None, slope=slope, intercept=intercept,
    )


class Fidelity(_Model):
    rho: float | None  # Spearman rank correlation over the common ids; None when undefined
    ci_low: float | None  # percentile bootstrap interval over resampled ids
    ci_high: float | None
    p_value: float | None  # scipy's two-sided p for rho = 0
    n: int
    reason: str = ""  # why rho or the CI is missing


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Spearman = Pearson on average ranks; resampled ids repeat, so ties must get average ranks.
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))


def rank_fidelity(a: Mapping[int, float], b: Mapping[int, float], n_boot: int = 1000, seed: int = 0) -> Fidelity:
    """How well ranking by `a` (e.g. a proxy's score) preserves the ranking by `b`."""
    ids = [k for k in a if k in b]
    n = len(ids)
    if n < 3:
        return Fidelity(rho=None, ci_low=None, ci_high=None, p_value=None, n=n,
                        reason=f"{n} common ids; rank correlation needs at least 3")
    x = np.array([a[k] for k in ids], dtype=float)
    y = np.array([b[k] for k in ids], dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return Fidelity(rho=None, ci_low=None, ci_high=None, p_value=None, n=n,
                        reason="one side is constant; rank correlation is undefined")
    res = stats.spearmanr(x, y)
    lo = hi = None
    reason = ""
    if n_boot > 0:
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        boot = _rowwise_spearman(x[idx], y[idx])
        # Resamples that drew a single distinct id on one side have no rank correlation.
        boot = boot[np.isfinite(boot)]
        if boot.size:
            lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
        else:
            reason = "every bootstrap resample was degenerate; no CI"
    return Fidelity(rho=float(res.statistic), ci_low=lo, ci_high=hi, p_value=float(res.pvalue), n=n, reason=reason)


def scaling_curve(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cumulative compute vs cumulative single-run improvements (what ASI-Arch counted) and verified
    discoveries. Rows must be in chronological order; each output row is the input row plus the
    three running totals. A missing flag counts as False; a missing `compute_h` is an error."""
    compute = 0.0
    single = verified = 0
    out = []
    for row in events:
        compute += float(row["compute_h"])
        single += bool(row.get("single_run_improvement", False))
        verified += bool(row.get("verified_discovery", False))
        out.append({**row, "cumulative_compute_h": compute, "cumulative_single_run_improvements": single,
                    "cumulative_verified_discoveries": verified})
    return out
