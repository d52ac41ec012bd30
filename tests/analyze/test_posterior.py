"""The empirical-Bayes posterior on synthetic scores whose noise is known: shrinkage ranks a lucky
single run below a candidate with several good runs, the interval tightens with seeds and covers
the truth about as often as it says, and runs at two rungs combine through the rung offset."""

from __future__ import annotations

import numpy as np

from archscout.analyze.posterior import fit, ranked, rung_noise

SIGMA = 0.05  # the seed noise of one run's fitness, known here


def population(rng, n=40, mu=0.5, tau=0.03, seeds=1):
    """n candidates with true fitness ~ N(mu, tau), each measured on `seeds` runs with noise SIGMA."""
    truth = rng.normal(mu, tau, n)
    obs = {i: [("nano", float(t + rng.normal(0, SIGMA))) for _ in range(seeds)] for i, t in enumerate(truth)}
    return truth, obs


def test_a_lucky_single_run_does_not_outrank_several_good_runs():
    rng = np.random.default_rng(0)
    _, obs = population(rng)
    # 1000: truly 0.59 (3 tau above the population), six runs around it; 1001: one run at 0.66,
    # above every other single run and above 1000's runs (a lucky seed of a merely good design)
    obs[1000] = [("nano", y) for y in (0.58, 0.60, 0.59, 0.61, 0.57, 0.59)]
    obs[1001] = [("nano", 0.66)]
    posts, noise = fit(obs, {"nano": SIGMA})
    # on its raw value the lucky run would rank first of everything
    assert max(obs, key=lambda i: np.mean([y for _, y in obs[i]])) == 1001
    order = [p.arch_id for p in ranked(posts)]
    assert order[0] == 1000
    assert posts[1000].mean > posts[1001].mean
    # the single run was pulled most of the way back to the population mean
    assert posts[1001].mean < 0.5 + 0.5 * (0.66 - 0.5)
    assert abs(noise.mu - 0.5) < 0.02


def test_the_posterior_tightens_with_seeds():
    rng = np.random.default_rng(1)
    _, obs = population(rng)
    sds = []
    for k in (1, 2, 4, 8):
        obs[999] = [("nano", 0.52 + 0.01 * j) for j in range(k)]
        posts, _ = fit(obs, {"nano": SIGMA})
        sds.append(posts[999].sd)
        assert posts[999].lo < posts[999].mean < posts[999].hi
    assert all(a > b for a, b in zip(sds, sds[1:])), sds


def test_the_interval_covers_the_truth_at_about_its_level():
    rng = np.random.default_rng(2)
    truth, obs = population(rng, n=2000, seeds=2)
    posts, noise = fit(obs, {"nano": SIGMA}, level=0.9)
    covered = np.mean([posts[i].lo <= truth[i] <= posts[i].hi for i in range(len(truth))])
    assert 0.86 <= covered <= 0.94, covered
    # the between-candidate spread is recovered from the moments (true tau 0.03)
    assert 0.02 < noise.tau < 0.04


def test_runs_at_two_rungs_combine_through_the_rung_offset():
    # the baseline's fitness sits 0.1 higher at "tiny" than at "nano"; a candidate measured only at
    # tiny must not gain that offset over one measured only at nano
    baseline = {"nano": [0.50, 0.45, 0.55], "tiny": [0.60, 0.55, 0.65]}
    obs = {1: [("nano", 0.55)], 2: [("tiny", 0.65)], 3: [("nano", 0.50)], 4: [("nano", 0.45)]}
    sigma, offset = rung_noise(baseline, obs, ["nano", "tiny"])
    assert abs(offset["tiny"] - 0.10) < 1e-9 and offset["nano"] == 0.0
    assert abs(sigma["nano"] - 0.05) < 1e-9
    posts, _ = fit(obs, sigma, offset)
    assert abs(posts[1].mean - posts[2].mean) < 1e-9


def test_unmeasured_noise_falls_back_to_repeats_then_a_default():
    obs = {1: [("nano", 0.5), ("nano", 0.6)], 2: [("nano", 0.4), ("nano", 0.5)]}
    sigma, _ = rung_noise({"nano": [0.5]}, obs, ["nano"])  # one baseline run measures no noise
    assert abs(sigma["nano"] - np.sqrt(0.005)) < 1e-9
    sigma, _ = rung_noise({}, {1: [("nano", 0.5)]}, ["nano"])
    assert sigma["nano"] == 0.05
