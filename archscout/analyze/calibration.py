"""Statistics of a calibration: how much of a metric is architecture and how much is seed.

Input everywhere is `groups`: architecture name -> that architecture's values over seeds.

- `icc`: one-way random-effects ICC(1) (Shrout & Fleiss 1979), the share of variance between
  architectures, with a cluster-bootstrap CI (architectures resampled whole; resampling seeds too
  would add their noise to the means a second time and bias the ICC upwards);
- `kendall_vs_published`: Kendall tau (scipy) between the measured means and a published table's
  numbers, with a bootstrap CI over seeds;
- `spearman_between`: Spearman rho (scipy) between two presets' means on the shared architectures,
  with a bootstrap CI over seeds;
- `separation`: pairwise effect (mean_i - mean_j) in units of the pooled seed standard deviation;
- `learned_share`: share of seeds on which a task's accuracy reached a threshold (bimodality check).

It computes numbers only; what to evaluate and how to print it belong to `archscout.calibration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

Groups = dict[str, list[float]]
BOOTSTRAP = 2000


@dataclass
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def _clean(groups: Groups) -> dict[str, np.ndarray]:
    out = {}
    for name, values in groups.items():
        arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
        if len(arr):
            out[name] = arr
    return out


def icc_point(groups: Groups) -> float:
    """ICC(1) = (MSB - MSW) / (MSB + (k0 - 1) MSW); k0 is the usual correction for unequal seed counts.

    NaN when there are fewer than two architectures or no architecture has two seeds. When every
    architecture's seeds agree exactly (MSW = 0) and the means differ, ICC is 1.
    """
    g = _clean(groups)
    arrays = list(g.values())
    a = len(arrays)
    n = np.array([len(x) for x in arrays], dtype=np.float64)
    big_n = n.sum()
    if a < 2 or big_n - a < 1:
        return float("nan")
    grand = np.concatenate(arrays).mean()
    ssb = sum(len(x) * (x.mean() - grand) ** 2 for x in arrays)
    ssw = sum(((x - x.mean()) ** 2).sum() for x in arrays)
    msb, msw = ssb / (a - 1), ssw / (big_n - a)
    k0 = (big_n - (n**2).sum() / big_n) / (a - 1)
    denom = msb + (k0 - 1) * msw
    if denom <= 0:
        return float("nan") if msb == 0 else 1.0
    return float((msb - msw) / denom)


def _resample_within(g: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: v[rng.integers(0, len(v), len(v))] for k, v in g.items()}


def _ci(samples: list[float], alpha: float = 0.05) -> tuple[float, float]:
    arr = np.asarray([s for s in samples if math.isfinite(s)])
    if not len(arr):
        return float("nan"), float("nan")
    return float(np.quantile(arr, alpha / 2)), float(np.quantile(arr, 1 - alpha / 2))


def icc(groups: Groups, n_boot: int = BOOTSTRAP, seed: int = 0) -> Estimate:
    """ICC(1) with a 95% percentile cluster-bootstrap CI (architectures resampled with their seeds)."""
    g = _clean(groups)
    point = icc_point(g)
    rng = np.random.default_rng(seed)
    names = list(g)
    boots = []
    for _ in range(n_boot):
        picked = rng.integers(0, len(names), len(names))
        sample = {f"{i}": g[names[j]] for i, j in enumerate(picked)}
        boots.append(icc_point(sample))
    return Estimate(point, *_ci(boots))


def means(groups: Groups) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in _clean(groups).items()}


def _tau(measured: dict[str, float], published: dict[str, float], names: list[str], same_direction: bool) -> float:
    x = [measured[n] for n in names]
    y = [published[n] if same_direction else -published[n] for n in names]
    return round(float(stats.kendalltau(x, y).statistic), 12)


def kendall_vs_published(
    groups: Groups, published: dict[str, float], same_direction: bool, n_boot: int = BOOTSTRAP, seed: int = 0
) -> tuple[Estimate, int]:
    """Kendall tau between measured means and published numbers over the shared architectures.

    `same_direction`: True when "better" points the same way in both (e.g. both losses), so a
    perfect agreement is +1. Returns (estimate, number of shared architectures).
    """
    g = _clean(groups)
    names = [n for n in published if n in g]
    if len(names) < 3:
        return Estimate(float("nan"), float("nan"), float("nan")), len(names)
    point = _tau(means(g), published, names, same_direction)
    rng = np.random.default_rng(seed)
    boots = [_tau({k: float(v.mean()) for k, v in _resample_within(g, rng).items()}, published, names, same_direction) for _ in range(n_boot)]
    return Estimate(point, *_ci(boots)), len(names)


def spearman_between(a: Groups, b: Groups, n_boot: int = BOOTSTRAP, seed: int = 0) -> tuple[Estimate, int]:
    """Spearman rho between two presets' per-architecture means, bootstrap CI over seeds of both."""
    ga, gb = _clean(a), _clean(b)
    names = [n for n in ga if n in gb]
    if len(names) < 3:
        return Estimate(float("nan"), float("nan"), float("nan")), len(names)

    def rho(x: dict, y: dict) -> float:
        return round(float(stats.spearmanr([x[n].mean() for n in names], [y[n].mean() for n in names]).statistic), 12)

    rng = np.random.default_rng(seed)
    boots = [rho(_resample_within(ga, rng), _resample_within(gb, rng)) for _ in range(n_boot)]
    return Estimate(rho(ga, gb), *_ci(boots)), len(names)


def pooled_sd(x: np.ndarray, y: np.ndarray) -> float:
    dof = len(x) + len(y) - 2
    if dof < 1:
        return float("nan")
    return float(math.sqrt((((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum()) / dof))


def separation(groups: Groups) -> dict[str, dict[str, float]]:
    """matrix[a][b] = (mean_a - mean_b) / pooled seed sd of a and b; +-inf when the sd is 0."""
    g = _clean(groups)
    out: dict[str, dict[str, float]] = {}
    for a, x in g.items():
        row = {}
        for b, y in g.items():
            diff = float(x.mean() - y.mean())
            sd = pooled_sd(x, y)
            if a == b:
                row[b] = 0.0
            elif not math.isfinite(sd):
                row[b] = float("nan")
            elif sd == 0:
                row[b] = 0.0 if diff == 0 else math.copysign(math.inf, diff)
            else:
                row[b] = diff / sd
        out[a] = row
    return out


def learned_share(values: list[float], threshold: float) -> float:
    """Share of seeds whose accuracy reached `threshold` (1.0: learned on every seed)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean([v >= threshold for v in vals])) if vals else float("nan")


def seed_sd(values: list[float]) -> float:
    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    return float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
