"""Calibration statistics on synthetic data whose answers are known."""

import math

import numpy as np

from archscout.analyze.calibration import (
    icc,
    icc_point,
    kendall_vs_published,
    learned_share,
    separation,
    spearman_between,
)


def _simulate(between_sd: float, within_sd: float, archs: int = 40, seeds: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {f"a{i}": list(rng.normal(rng.normal(0, between_sd), within_sd, seeds)) for i in range(archs)}


def test_icc_matches_the_simulated_variance_share():
    # between variance 4, within 1: population ICC = 4 / 5 = 0.8
    est = icc(_simulate(2.0, 1.0, archs=200), n_boot=300)
    assert abs(est.value - 0.8) < 0.06
    assert est.low < 0.8 < est.high


def test_icc_is_near_zero_when_architecture_does_not_matter():
    est = icc(_simulate(0.0, 1.0, archs=200), n_boot=300)
    assert abs(est.value) < 0.06
    assert est.low < 0 < est.high or abs(est.low) < 0.06


def test_icc_hand_computed_example():
    # two groups, two seeds: means 1 and 3, within deviations +-1 -> MSB = 4, MSW = 2, ICC = (4-2)/(4+2)
    assert math.isclose(icc_point({"a": [0, 2], "b": [2, 4]}), 2 / 6)
    assert icc_point({"a": [1, 1], "b": [2, 2]}) == 1.0


def test_kendall_tau_is_one_for_a_matching_order_and_minus_one_for_the_reverse():
    groups = {n: [v, v + 0.01] for n, v in zip("abcde", [1.0, 2.0, 3.0, 4.0, 5.0])}
    published = {"a": 10.0, "b": 20.0, "c": 30.0, "d": 40.0, "e": 50.0}
    same, n = kendall_vs_published(groups, published, same_direction=True, n_boot=50)
    assert n == 5 and same.value == 1.0
    reverse, _ = kendall_vs_published(groups, published, same_direction=False, n_boot=50)
    assert reverse.value == -1.0


def test_kendall_ignores_members_that_were_not_measured():
    groups = {"a": [1.0, 1.1], "b": [2.0, 2.1], "c": [3.0, 3.1]}
    est, n = kendall_vs_published(groups, {"a": 1, "b": 2, "c": 3, "zz": 4}, same_direction=True, n_boot=20)
    assert n == 3 and est.value == 1.0


def test_spearman_between_presets():
    a = {n: [float(i), float(i) + 0.1] for i, n in enumerate("abcdef")}
    b = {n: [float(-i), float(-i) + 0.1] for i, n in enumerate("abcdef")}
    est, n = spearman_between(a, a, n_boot=50)
    assert n == 6 and est.value == 1.0 and est.low == 1.0
    assert spearman_between(a, b, n_boot=50)[0].value == -1.0


def test_separation_is_in_units_of_pooled_seed_sd():
    m = separation({"a": [0.0, 2.0], "b": [4.0, 6.0]})
    # pooled sd = sqrt((2 + 2) / 2) = sqrt(2); difference -4
    assert math.isclose(m["a"]["b"], -4 / math.sqrt(2))
    assert math.isclose(m["b"]["a"], 4 / math.sqrt(2))
    assert m["a"]["a"] == 0.0


def test_learned_share_flags_a_bimodal_task():
    assert learned_share([0.9, 0.95, 0.92], 0.5) == 1.0
    assert learned_share([0.9, 0.1, 0.92, 0.12], 0.5) == 0.5
