import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from archscout.analyze.stats import (
    Comparison,
    VerificationRule,
    Verdict,
    benjamini_hochberg,
    compare,
    compare_many,
    decide,
    noise_floor,
    rank_fidelity,
    scaling_curve,
    shrinkage,
)

SIGMA = 0.02  # baseline seed noise of val_loss in the simulations


def null_and_planted_study(rng, n_arch: int, effect_sigmas: float = 0.0, seeds: int = 5) -> dict[int, Verdict]:
    """One simulated study: arch 0 lowers val_loss by effect_sigmas·σ, the others equal the baseline."""
    base = rng.normal(4.0, SIGMA, seeds)
    cand = rng.normal(4.0, SIGMA, (n_arch, seeds))
    cand[0] -= effect_sigmas * SIGMA
    comps = compare_many({i: cand[i] for i in range(n_arch)}, base, higher_is_better=False, metric="val_loss")
    return decide({i: {"val_loss": c} for i, c in comps.items()}, VerificationRule(secondary=None))


def test_bh_matches_hand_computed_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> p·m/rank 0.02, 0.02, 0.04, 0.04 -> running min from the top
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_bh_counts_nan_as_a_test_and_keeps_it_nan():
    q = benjamini_hochberg([0.01, math.nan])
    assert q[0] == pytest.approx(0.02) and math.isnan(q[1])
    assert benjamini_hochberg([]) == []
    with pytest.raises(ValueError):
        benjamini_hochberg([1.5])


def test_lower_loss_is_an_improvement():
    c = compare([3.90, 3.91, 3.89], [4.00, 4.01, 3.99], higher_is_better=False)
    assert c.effect == pytest.approx(0.10)
    assert c.ci_low > 0 and c.p_value < 0.01 and c.p_worse > 0.99 and c.cohen_d > 0
    worse = compare([4.10, 4.11, 4.09], [4.00, 4.01, 3.99], higher_is_better=False)
    assert worse.effect == pytest.approx(-0.10) and worse.p_worse < 0.01 and worse.p_value > 0.99


def test_higher_accuracy_is_an_improvement():
    c = compare([0.60, 0.62, 0.61], [0.50, 0.52, 0.51], higher_is_better=True)
    assert c.effect == pytest.approx(0.10) and c.p_value < 0.01 and c.cohen_d > 0
    assert compare([0.40, 0.42, 0.41], [0.50, 0.52, 0.51], higher_is_better=True).effect == pytest.approx(-0.10)


def test_welch_numbers_match_scipy_and_the_satterthwaite_interval():
    cand, base = [0.61, 0.64, 0.58, 0.66], [0.50, 0.55, 0.49, 0.58, 0.52, 0.47]
    c = compare(cand, base, higher_is_better=True)
    ref = sps.ttest_ind(cand, base, equal_var=False)
    assert c.p_two_sided == pytest.approx(ref.pvalue)
    assert c.p_value == pytest.approx(sps.ttest_ind(cand, base, equal_var=False, alternative="greater").pvalue)
    assert c.p_value + c.p_worse == pytest.approx(1.0)
    va, vb = np.var(cand, ddof=1) / 4, np.var(base, ddof=1) / 6
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 5)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (c.ci_low, c.ci_high) == pytest.approx((c.effect - half, c.effect + half))
    assert (c.candidate_n, c.baseline_n, c.method) == (4, 6, "welch")


def test_welch_ci_covers_the_true_difference_about_95_percent():
    rng = np.random.default_rng(7)
    true_diff, hits, sims = 0.3, 0, 500
    for _ in range(sims):
        # unequal variances and sizes: the case Welch exists for
        c = compare(rng.normal(1.0 + true_diff, 1.0, 5), rng.normal(1.0, 2.0, 8), higher_is_better=True)
        hits += c.ci_low <= true_diff <= c.ci_high
    assert 0.92 <= hits / sims <= 0.98


def test_identical_distributions_rarely_produce_any_discovery():
    # All nulls true, so the FDR equals the family-wise error rate: BH holds it at about q = 0.1.
    rng = np.random.default_rng(11)
    studies = 300
    any_discovery = sum(any(v.discovery for v in null_and_planted_study(rng, 20).values()) for _ in range(studies))
    assert any_discovery / studies <= 0.1 + 0.05


def test_planted_three_sigma_improvement_is_found():
    rng = np.random.default_rng(3)
    trials = 200
    found = sum(null_and_planted_study(rng, 10, effect_sigmas=3.0)[0].discovery for _ in range(trials))
    assert found / trials >= 0.9


def two_metric_verdict(bench_cand, bench_base, rule=None):
    loss = compare([3.90, 3.91, 3.89, 3.90], [4.00, 4.01, 3.99, 4.00], higher_is_better=False, metric="val_loss")
    comps = {"val_loss": loss}
    if bench_cand is not None:
        comps["benchmark"] = compare(bench_cand, bench_base, higher_is_better=True, metric="benchmark")
    return decide({1: comps}, rule or VerificationRule())[1]


def test_much_worse_secondary_blocks_a_discovery():
    v = two_metric_verdict([0.30, 0.31, 0.29, 0.30], [0.50, 0.51, 0.49, 0.50])
    assert not v.discovery and v.worse_on_secondary
    assert "benchmark significantly worse" in v.reason


def test_secondary_noise_does_not_block_and_the_reason_reads_as_one_line():
    v = two_metric_verdict([0.50, 0.52, 0.49, 0.51], [0.50, 0.51, 0.49, 0.52])
    assert v.discovery and not v.worse_on_secondary and v.q_value <= 0.1
    assert v.reason.startswith("val_loss improves by 0.1 [") and "≤ 0.1; benchmark not worse (p=" in v.reason
    assert "\n" not in v.reason


def test_missing_secondary_is_ignored_and_said():
    v = two_metric_verdict(None, None)
    assert v.discovery and "benchmark not measured, ignored" in v.reason
    v = two_metric_verdict([0.3, 0.3, 0.31], [0.5, 0.5, 0.51], VerificationRule(secondary=None))
    assert v.discovery and "no secondary metric in the rule" in v.reason


def test_q_values_are_over_all_architectures_passed_in():
    strong = compare([3.90, 3.91, 3.89], [4.00, 4.01, 3.99], higher_is_better=False)
    null = compare([4.00, 4.02, 3.99], [4.00, 4.01, 3.99], higher_is_better=False)
    alone = decide({1: {"val_loss": strong}}, VerificationRule())[1]
    crowd = decide({1: {"val_loss": strong}, **{i: {"val_loss": null} for i in range(2, 12)}}, VerificationRule())[1]
    assert crowd.q_value == pytest.approx(min(1.0, alone.q_value * 11))


def test_one_seed_and_zero_variance_do_not_crash_and_are_not_discoveries():
    one = compare([3.0], [4.00, 4.01, 3.99], higher_is_better=False)
    flat = compare([3.0, 3.0, 3.0], [4.0, 4.0, 4.0], higher_is_better=False)
    # np.var([3.7] * 3, ddof=1) is ~3e-31, not 0: rounding must not make a constant side testable
    inexact = compare([3.7, 3.7, 3.7], [4.7, 4.7, 4.7], higher_is_better=False)
    for c in (one, flat, inexact):
        assert c.effect == pytest.approx(1.0)
        assert all(math.isnan(x) for x in (c.p_value, c.p_worse, c.p_two_sided, c.ci_low, c.ci_high))
    assert math.isnan(one.candidate_std) and not math.isnan(one.cohen_d)  # d against the baseline's std
    assert math.isnan(flat.cohen_d) and inexact.candidate_std == 0.0
    verdicts = decide({1: {"val_loss": one}, 2: {"val_loss": flat}, 3: {"val_loss": inexact}},
                      VerificationRule(secondary=None))
    assert not any(v.discovery for v in verdicts.values())
    assert "q undefined" in verdicts[2].reason and "too few seeds" in verdicts[1].reason
    # NaN survives a JSON round trip (as "NaN"), so stored comparisons reload
    assert math.isnan(Comparison.model_validate_json(one.model_dump_json()).p_value)
    json.loads(one.model_dump_json())


def test_zero_variance_on_one_side_is_still_testable():
    c = compare([3.9, 3.9, 3.9], [4.00, 4.01, 3.99], higher_is_better=False)
    assert c.p_value < 0.05 and c.candidate_std == 0.0


def test_too_few_seeds_blocks_even_a_huge_effect():
    c = compare([3.0, 3.01], [4.0, 4.01], higher_is_better=False)
    v = decide({1: {"val_loss": c}}, VerificationRule(secondary=None))[1]
    assert c.p_value < 0.05 and not v.discovery and "too few seeds" in v.reason


def test_non_finite_or_empty_values_are_rejected():
    with pytest.raises(ValueError):
        compare([3.9, math.inf], [4.0, 4.1], higher_is_better=False)
    with pytest.raises(ValueError):
        compare([], [4.0, 4.1], higher_is_better=False)


def test_rule_defaults_to_the_other_metric_as_secondary():
    assert VerificationRule().secondary == "benchmark"
    assert VerificationRule(primary="benchmark").secondary == "val_loss"
    assert VerificationRule(secondary=None).secondary is None
    with pytest.raises(ValueError):
        VerificationRule(primary="benchmark", secondary="benchmark")
    rule = VerificationRule(q=0.05, min_seeds=4)
    assert VerificationRule.model_validate_json(rule.model_dump_json()) == rule


def test_noise_floor_uses_sample_std():
    nf = noise_floor({"val_loss": [4.0, 4.2, 4.1], "benchmark": [0.5], "tokens_per_s": []})
    assert nf.metrics["val_loss"].mean == pytest.approx(4.1)
    assert nf.metrics["val_loss"].std == pytest.approx(0.1) and nf.metrics["val_loss"].n == 3
    assert math.isnan(nf.metrics["benchmark"].std) and "tokens_per_s" not in nf.metrics


def test_shrinkage_on_a_hand_computed_fixture():
    # verify = 0.5·explore − 0.01 exactly; id 4 and 5 appear on one side only and are ignored
    explore = {1: 0.10, 2: 0.04, 3: -0.02, 4: 0.5}
    verify = {1: 0.04, 2: 0.01, 3: -0.02, 5: 0.3}
    r = shrinkage(explore, verify)
    assert [row.arch_id for row in r.rows] == [1, 2, 3]
    assert [row.shrink for row in r.rows] == pytest.approx([0.06, 0.03, 0.0])
    assert r.mean_shrinkage == pytest.approx(0.03)
    assert (r.winners, r.winners_kept, r.kept_fraction) == (2, 2, 1.0)
    assert (r.slope, r.intercept) == pytest.approx((0.5, -0.01))
    def mk(d):
        return Verdict(discovery=d, q_value=0.0, p_value=0.0, effect=0.0, worse_on_secondary=False, reason="")

    r = shrinkage(explore, verify, verdicts={1: mk(True), 2: mk(False)})
    assert (r.winners_kept, r.kept_fraction) == (1, 0.5)


def test_shrinkage_with_few_points_has_no_slope():
    r = shrinkage({1: 0.1, 2: 0.2}, {1: 0.0, 2: 0.1})
    assert r.slope is None and r.mean_shrinkage == pytest.approx(0.1)
    r = shrinkage({}, {})
    assert r.mean_shrinkage is None and r.kept_fraction is None and r.rows == []


def test_rank_fidelity_on_monotone_reversed_and_swapped_fixtures():
    a = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 5.0}
    up = rank_fidelity(a, {k: 10 * v**2 for k, v in a.items()}, n_boot=200)
    assert up.rho == pytest.approx(1.0) and up.n == 5 and up.ci_low == pytest.approx(1.0)
    assert rank_fidelity(a, {k: -v for k, v in a.items()}, n_boot=200).rho == pytest.approx(-1.0)
    # two adjacent swaps: Σd² = 4, rho = 1 − 6·4 / (5·24) = 0.8
    f = rank_fidelity(a, {1: 2.0, 2: 1.0, 3: 4.0, 4: 3.0, 5: 5.0, 9: 0.0}, n_boot=200, seed=1)
    assert f.rho == pytest.approx(0.8) and f.n == 5
    assert -1.0 <= f.ci_low <= f.rho <= f.ci_high <= 1.0
    assert f == rank_fidelity(a, {1: 2.0, 2: 1.0, 3: 4.0, 4: 3.0, 5: 5.0}, n_boot=200, seed=1)


def test_rank_fidelity_is_none_for_too_few_or_constant():
    f = rank_fidelity({1: 1.0, 2: 2.0}, {1: 1.0, 2: 2.0, 3: 3.0})
    assert f.rho is None and f.n == 2 and "at least 3" in f.reason
    f = rank_fidelity({1: 1.0, 2: 2.0, 3: 3.0}, {1: 5.0, 2: 5.0, 3: 5.0})
    assert f.rho is None and "constant" in f.reason


def test_scaling_curve_accumulates_in_order():
    events = [
        {"id": 1, "compute_h": 0.5, "single_run_improvement": True, "verified_discovery": False},
        {"id": 2, "compute_h": 0.25, "single_run_improvement": False, "verified_discovery": False},
        {"id": 3, "compute_h": 1.0, "single_run_improvement": True, "verified_discovery": True},
        {"id": 4, "compute_h": 0.25, "single_run_improvement": True},
    ]
    rows = scaling_curve(events)
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert [r["cumulative_compute_h"] for r in rows] == [0.5, 0.75, 1.75, 2.0]
    assert [r["cumulative_single_run_improvements"] for r in rows] == [1, 1, 2, 3]
    assert [r["cumulative_verified_discoveries"] for r in rows] == [0, 0, 1, 1]
    assert scaling_curve([]) == []
