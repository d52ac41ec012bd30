"""Posterior fitness: an empirical-Bayes estimate of each candidate's fitness from all of its runs.

Exploration trains a candidate once, and at `nano` one run's fitness is the architecture plus a
seed draw (calibration, issue #11: fitness ICC 0.91, so ~9 % of fitness variance is seed). Ranking
by single runs lets a lucky seed become a parent. This module models

    y_ir = theta_i + b_r + e_ir,   e_ir ~ N(0, sigma_r^2),   theta_i ~ N(mu, tau^2)

- y_ir: the fitness of one run of candidate i at rung (preset) r, scored against that rung's
  baseline reference (each rung's own baseline runs, so fitness is already centred per rung);
- sigma_r: the rung's measured seed noise, the standard deviation of the baseline's own per-seed
  fitness at that rung (the baseline is never selected, so its spread is pure seed noise). Where the
  baseline has fewer than two runs at a rung, the pooled within-candidate spread there, else
  `DEFAULT_SIGMA`;
- b_r: a per-rung offset, the baseline's mean fitness at rung r minus its mean at the first rung
  (one latent fitness per candidate across rungs, shifted by how the rung's scale differs);
- mu, tau^2: the population, by the method of moments over the candidates' precision-weighted means
  (tau^2 = var(means) - mean(sampling variance), floored at (sigma / 4)^2 so one batch can never
  make the prior a point); with fewer than three candidates, the spread the calibration's fitness
  ICC at nano implies (0.91: tau = 3.2 sigma), which barely shrinks.

The posterior of theta_i is normal (conjugacy): precision 1/tau^2 + sum_r n_ir / sigma_r^2, mean the
precision-weighted average of mu and the candidate's runs. A single run is pulled toward mu by
tau^2 / (tau^2 + sigma^2); more seeds pull less and narrow the interval.

What is not here: which runs a study has (posteriors_from_db reads them; the loop decides which to
run, ladder.py) and how one run is scored (fitness.py).
"""

from __future__ import annotations

import math
import random
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from scipy import stats

from archscout.analyze.fitness import BASELINE_JUDGE, FitnessConfig, baseline_ref_from_runs, compute_fitness

# seed sigma of fitness when nothing measured it (one baseline run and no repeated candidate): about
# the nano baseline's measured spread (calibration, 5 seeds) so a fresh study is not overconfident
DEFAULT_SIGMA = 0.05
LEVEL = 0.90  # the interval shown beside every posterior mean
# Share of fitness variance between architectures measured by `archscout calibrate` at nano (12 panel
# members x 5 seeds, seed-sigma fitness: ICC 0.91 [0.80, 0.95]); with fewer than three candidates to
# estimate tau from, the prior spread is the one that ICC implies: tau^2 = sigma^2 * ICC / (1 - ICC)
CALIBRATED_ICC = 0.91
# run stages that measure a candidate for the search (verify runs are the test, kept apart)
SEARCH_STAGES = ("explore", "promote")


@dataclass(frozen=True)
class Posterior:
    arch_id: int
    mean: float
    sd: float
    lo: float  # LEVEL interval
    hi: float
    n: int  # runs combined
    runs: dict[str, int] = field(default_factory=dict)  # rung -> runs
    raw: float | None = None  # plain mean of its run fitness (offset-corrected)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "lo": self.lo, "hi": self.hi, "n": self.n,
                "runs": dict(self.runs), "raw": self.raw}

    def draw(self, rng: random.Random) -> float:
        return rng.gauss(self.mean, self.sd)


@dataclass(frozen=True)
class Noise:
    """Per-rung seed sigma and offset, and the population prior fitted to them."""

    sigma: dict[str, float]
    offset: dict[str, float]
    mu: float
    tau: float

    def as_dict(self) -> dict:
        return {"sigma": dict(self.sigma), "offset": dict(self.offset), "mu": self.mu, "tau": self.tau}


def rung_noise(baseline: Mapping[str, Sequence[float]], candidates: Mapping[int, Sequence[tuple[str, float]]],
               rungs: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(sigma, offset) per rung from the baseline's per-seed fitness (and, lacking that, repeats)."""
    sigma: dict[str, float] = {}
    offset: dict[str, float] = {}
    first = baseline.get(rungs[0]) if rungs else None
    first_mean = float(np.mean(first)) if first else None
    for rung in rungs:
        values = list(baseline.get(rung, []))
        if len(values) >= 2 and np.std(values, ddof=1) > 0:
            sigma[rung] = float(np.std(values, ddof=1))
        else:
            sigma[rung] = _pooled_within(candidates, rung) or DEFAULT_SIGMA
        offset[rung] = float(np.mean(values)) - first_mean if values and first_mean is not None else 0.0
    return sigma, offset


def _pooled_within(candidates: Mapping[int, Sequence[tuple[str, float]]], rung: str) -> float | None:
    ss, dof = 0.0, 0
    for obs in candidates.values():
        ys = [y for r, y in obs if r == rung]
        if len(ys) >= 2:
            ss += float(np.var(ys, ddof=1)) * (len(ys) - 1)
            dof += len(ys) - 1
    return math.sqrt(ss / dof) if dof and ss > 0 else None


def fit(candidates: Mapping[int, Sequence[tuple[str, float]]], sigma: Mapping[str, float],
        offset: Mapping[str, float] | None = None, level: float = LEVEL,
        prior_ids: Sequence[int] | None = None) -> tuple[dict[int, Posterior], Noise]:
    """Posteriors of every candidate from its (rung, fitness) runs.

    `prior_ids` are the candidates the population prior is estimated from (default: all); the
    baseline, for one, is shown with a posterior but is not a draw from the searched population.
    """
    offset = offset or {}
    summary: dict[int, tuple[float, float, int, dict[str, int]]] = {}  # id -> (mean, var, n, runs)
    for arch_id, obs in candidates.items():
        obs = [(r, y) for r, y in obs if r in sigma and y is not None and math.isfinite(y)]
        if not obs:
            continue
        prec = sum(1.0 / sigma[r] ** 2 for r, _ in obs)
        mean = sum((y - offset.get(r, 0.0)) / sigma[r] ** 2 for r, y in obs) / prec
        runs: dict[str, int] = {}
        for r, _ in obs:
            runs[r] = runs.get(r, 0) + 1
        summary[arch_id] = (mean, 1.0 / prec, len(obs), runs)
    sig_bar = float(np.mean(list(sigma.values()))) if sigma else DEFAULT_SIGMA
    pool = [summary[i] for i in (prior_ids if prior_ids is not None else summary) if i in summary]
    if len(pool) < 2:
        pool = list(summary.values())
    floor = (sig_bar / 4) ** 2
    if len(pool) >= 3:
        means = np.array([p[0] for p in pool])
        variances = np.array([p[1] for p in pool])
        mu = float(means.mean())
        tau2 = max(float(means.var(ddof=1) - variances.mean()), floor)
    elif pool:
        # too few to estimate a spread: the calibration's between-architecture share
        mu, tau2 = float(np.mean([p[0] for p in pool])), sig_bar**2 * CALIBRATED_ICC / (1 - CALIBRATED_ICC)
    else:
        mu, tau2 = 0.5, sig_bar**2 * CALIBRATED_ICC / (1 - CALIBRATED_ICC)
    z = float(stats.norm.ppf(0.5 + level / 2))
    out: dict[int, Posterior] = {}
    for arch_id, (mean, var, n, runs) in summary.items():
        prec = 1.0 / tau2 + 1.0 / var
        post_mean = (mu / tau2 + mean / var) / prec
        sd = math.sqrt(1.0 / prec)
        out[arch_id] = Posterior(arch_id, post_mean, sd, post_mean - z * sd, post_mean + z * sd, n, runs, mean)
    return out, Noise(dict(sigma), dict(offset), mu, math.sqrt(tau2))


def ranked(posteriors: Mapping[int, Posterior]) -> list[Posterior]:
    """Best posterior mean first (ties: more runs, then the older id)."""
    return sorted(posteriors.values(), key=lambda p: (-p.mean, -p.n, p.arch_id))


def thompson(posteriors: Sequence[Posterior], rng: random.Random) -> int | None:
    """One Thompson draw: the candidate whose sampled fitness is highest."""
    if not posteriors:
        return None
    return max(posteriors, key=lambda p: p.draw(rng)).arch_id


def prob_above(post: Posterior, cutoff: float) -> float:
    """Posterior probability that the candidate's fitness exceeds `cutoff`."""
    if post.sd <= 0:
        return float(post.mean > cutoff)
    return float(stats.norm.sf(cutoff, loc=post.mean, scale=post.sd))


def thompson_picks(posteriors: Sequence[Posterior], cutoff: float, slots: int,
                   rng: random.Random) -> list[tuple[Posterior, float, float]]:
    """Multiple-play Thompson sampling against a cutoff: one draw from each posterior (in the order
    given, so a fixed `rng` gives a fixed answer); those whose draw clears `cutoff`, highest draw
    first, at most `slots`. Each is returned with its draw and P(fitness > cutoff).

    A candidate is picked with about the posterior probability that it belongs above the cutoff:
    a wide single-run posterior near the cutoff often, a narrow one far above or below rarely (its
    membership is already settled). Candidates whose whole interval lies below the cutoff are not
    drawn at all: more seeds could not change where they stand at this interval level.
    """
    if slots <= 0:
        return []
    drawn = [(p, p.draw(rng)) for p in posteriors if p.hi >= cutoff]
    above = sorted(((p, d) for p, d in drawn if d >= cutoff), key=lambda pd: (-pd[1], pd[0].arch_id))
    return [(p, d, prob_above(p, cutoff)) for p, d in above[:slots]]


# -- from a study database ------------------------------------------------------------------------


def run_fitness(db, arch_ids: Sequence[int] | None, rungs: Sequence[str], config: FitnessConfig,
                baseline_id: int) -> tuple[dict[str, list[float]], dict[int, list[tuple[str, float]]]]:
    """(baseline per-seed fitness by rung, candidate -> [(rung, fitness)]) from the search runs.

    Each run is scored against its own rung's baseline reference; candidates without a baseline at a
    rung skip that rung's runs (the ladder evaluates the baseline before anyone reaches the rung).
    """
    base, cands = _timed_fitness(db, arch_ids, rungs, config, baseline_id)
    return ({r: [y for y, _ in ys] for r, ys in base.items()},
            {a: [(r, y) for r, y, _ in obs] for a, obs in cands.items()})


def _timed_fitness(db, arch_ids: Sequence[int] | None, rungs: Sequence[str], config: FitnessConfig, baseline_id: int
                   ) -> tuple[dict[str, list[tuple[float, datetime]]], dict[int, list[tuple[str, float, datetime]]]]:
    """run_fitness with each run's creation time beside its fitness (best_history replays by it)."""
    from archscout.store.pool import held_ids

    refs = {}
    base_fit: dict[str, list[tuple[float, datetime]]] = {}
    for rung in rungs:
        runs = [r for r in db.runs_for(baseline_id, "explore", rung) if r.status == "ok"]
        try:
            refs[rung] = baseline_ref_from_runs([r.result for r in runs])
        except ValueError:
            continue
        judge = BASELINE_JUDGE if config.judge == "llm" else None
        base_fit[rung] = [(compute_fitness(r.result, refs[rung], config, judge_score=judge).fitness, r.created_at)
                          for r in runs]
    held = held_ids(db)
    ids = [i for i in (arch_ids if arch_ids is not None else _searched_ids(db, rungs)) if i != baseline_id and i not in held]
    # Every candidate's search runs in one set-based read of their keys; a run's fitness is computed
    # once per version of the run and of what scores it (the rung's baseline reference, the config,
    # the judge score) and remembered (_fitness_memo), so a re-ranking loads and scores only the
    # runs that are new or changed since the last one, not the whole study again.
    memo = _fitness_memo(db)
    with db.reading() as conn:  # the keys and the runs loaded for them: one snapshot
        keys = db.ok_run_keys(ids, SEARCH_STAGES, list(refs), conn=conn)
        return base_fit, _scored(db, conn, ids, keys, refs, config, memo)


def _scored(db, conn, ids, keys, refs, config, memo) -> dict[int, list[tuple[str, float, datetime]]]:
    scoring = {rung: repr((sorted(ref.model_dump().items()), sorted(config.model_dump().items())))
               for rung, ref in refs.items()}
    judges = {arch_id: _judge(db, arch_id) if config.judge == "llm" else None for arch_id in keys}

    def memo_key(run_id, created_at, arch_id, rung):
        return run_id, created_at, scoring[rung], judges[arch_id]

    values: dict = {}  # this call's fitness by memo key (the memo may be cleared meanwhile)
    todo = []
    for arch_id, ks in keys.items():
        for k in ks:
            key = memo_key(k.id, k.created_at, arch_id, k.preset)
            if (value := memo.get(key)) is not None:
                values[key] = value
            else:
                todo.append(k.id)
    for run in db.runs_by_id(todo, conn=conn).values():
        if run.stage in SEARCH_STAGES and run.status == "ok" and run.preset in refs and run.val_loss is not None:
            judge = judges[run.architecture_id]
            key = memo_key(run.id, run.created_at, run.architecture_id, run.preset)
            values[key] = memo[key] = compute_fitness(run.result, refs[run.preset], config, judge_score=judge).fitness
    out: dict[int, list[tuple[str, float, datetime]]] = {}
    for arch_id in ids:
        obs = [(k.preset, values[key], k.created_at) for k in keys.get(arch_id, [])
               if (key := memo_key(k.id, k.created_at, arch_id, k.preset)) in values]
        if obs:
            out[arch_id] = obs
    if len(memo) > _MEMO_MAX:  # stale versions pile up only when references change; start afresh
        memo.clear()
    return out


# run fitness already computed, per study database: (run id, run version, scoring, judge) -> fitness
_MEMOS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MEMO_MAX = 500_000


def _fitness_memo(db) -> dict:
    memo = _MEMOS.get(db)
    if memo is None:
        memo = _MEMOS[db] = {}
    return memo


def best_history(db, rungs: Sequence[str], config: FitnessConfig, cuts: Sequence[datetime],
                 level: float = LEVEL) -> list[float | None]:
    """The best searched candidate's posterior mean as it stood at each cut: from the runs stored
    before it (None: no candidate yet). `--patience` replays a study's past with it (stopping.py).

    Each run is scored against the baseline reference of all the baseline's runs at its rung; the
    ladder trains a rung's baseline before any candidate reaches the rung, so that is the reference
    the run had when it was stored. The seed sigma and the population prior are refitted per cut.
    """
    bases = db.architectures_by_origin("baseline")
    if not bases or not rungs:
        return [None] * len(cuts)
    base_t, cand_t = _timed_fitness(db, None, rungs, config, bases[0].id)
    out: list[float | None] = []
    for cut in cuts:
        base_fit = {r: [y for y, t in ys if t < cut] for r, ys in base_t.items()}
        base_fit = {r: ys for r, ys in base_fit.items() if ys}
        cands = {a: [(r, y) for r, y, t in obs if t < cut] for a, obs in cand_t.items()}
        cands = {a: obs for a, obs in cands.items() if obs}
        if not cands:
            out.append(None)
            continue
        sigma, offset = rung_noise(base_fit, cands, [r for r in rungs if r in base_fit] or list(rungs))
        posts, _ = fit(cands, sigma, offset, level, prior_ids=list(cands))
        out.append(max((p.mean for p in posts.values()), default=None))
    return out


def best_posterior(db, rungs: Sequence[str], config: FitnessConfig) -> dict | None:
    """The searched candidate with the highest posterior mean, as {arch_id, mean, lo, hi, n, ...}
    (the live view's "best posterior"); None before any candidate has a run."""
    posts = posteriors_from_db(db, rungs, config, include_baseline=False)[0]
    best = max(posts.values(), key=lambda p: (p.mean, p.n, -p.arch_id), default=None)
    return None if best is None else {"arch_id": best.arch_id, **best.as_dict()}


def _searched_ids(db, rungs: Sequence[str]) -> list[int]:
    ids: set[int] = set()
    for rung in rungs:
        for stage in SEARCH_STAGES:
            ids.update(db.architectures_with_runs(stage, rung))
    return sorted(ids)


def _judge(db, arch_id: int) -> float | None:
    rows = db.analyses_for(arch_id, "judge")
    return rows[-1].numbers.get("normalized") if rows and rows[-1].numbers else None


def posteriors_from_db(db, rungs: Sequence[str], config: FitnessConfig, level: float = LEVEL,
                       include_baseline: bool = True) -> tuple[dict[int, Posterior], Noise]:
    """Every searched candidate's posterior (and the baseline's) at the study's rungs."""
    bases = db.architectures_by_origin("baseline")
    if not bases or not rungs:
        return {}, Noise({}, {}, 0.5, DEFAULT_SIGMA)
    baseline_id = bases[0].id
    base_fit, cands = run_fitness(db, None, rungs, config, baseline_id)
    sigma, offset = rung_noise(base_fit, cands, [r for r in rungs if r in base_fit] or list(rungs))
    prior_ids = list(cands)
    if include_baseline and base_fit:
        cands = {**cands, baseline_id: [(r, y) for r, ys in base_fit.items() for y in ys]}
    return fit(cands, sigma, offset, level, prior_ids=prior_ids)
