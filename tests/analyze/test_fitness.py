import math

import pytest

from archscout.analyze.fitness import (
    BaselineRef,
    FitnessConfig,
    baseline_ref_from_runs,
    sigmoid_term,
)
from archscout.analyze.fitness import compute_fitness as _compute_fitness
from archscout.analyze.stats import noise_floor
from archscout.records import FailureKind, ProbeReport, RunResult, failed_result

BASE = BaselineRef(n=3, val_loss_mean=4.0, val_loss_std=0.01, benchmark_mean=0.5, benchmark_std=0.02,
                   tokens_per_s_mean=10_000.0, tokens_per_s_std=100.0, params_mean=40_000.0, params_std=0.0,
                   flops_per_token_mean=100_000.0)


def run(val_loss=4.0, benchmark=0.5, tokens_per_s=10_000.0, params=40_000, seed=0, flops=100_000.0) -> RunResult:
    probes = [] if flops is None else [ProbeReport(name="complexity", passed=True, details={"flops_per_token": flops})]
    return RunResult(candidate_hash="c", preset="tiny", seed=seed, status="ok", val_loss=val_loss,
                     benchmark=benchmark, tokens_per_s=tokens_per_s, params=params, probes=probes)


def compute_fitness(cand, base, config=None, **kwargs):
    """Most tests here pin the paper's relative-Δ mapping (`asi-arch`); the default is seed-sigma."""
    return _compute_fitness(cand, base, config or FitnessConfig(formula="asi-arch"), **kwargs)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_equal_to_the_baseline_gives_one_half_everywhere():
    b = compute_fitness(run(), BASE)
    assert (b.loss_term, b.bench_term, b.judge_term, b.fitness) == (0.5, 0.5, 0.5, 0.5)
    assert b.judge_kind == "efficiency" and b.judge_parts == {"flops": 0.5, "params": 0.5}
    assert b.delta_loss == 0.0 and b.delta_bench == 0.0 and not b.leak_alarm


def test_five_percent_lower_loss_maps_to_sigma_of_two_and_a_half():
    b = compute_fitness(run(val_loss=3.8), BASE)
    assert b.delta_loss == pytest.approx(0.05)
    assert b.loss_term == pytest.approx(sig(2.5)) == pytest.approx(0.924141, abs=1e-6)
    assert b.fitness == pytest.approx((sig(2.5) + 0.5 + 0.5) / 3)


def test_window_edges_map_to_sigma_of_five():
    cfg = FitnessConfig()
    assert sigmoid_term(0.10, cfg) == pytest.approx(0.993307, abs=1e-6)
    assert sigmoid_term(-0.10, cfg) == pytest.approx(0.006693, abs=1e-6)


def test_gains_beyond_the_window_are_clipped():
    ten = compute_fitness(run(val_loss=3.6), BASE)
    twenty = compute_fitness(run(val_loss=3.2), BASE)
    assert twenty.loss_term == ten.loss_term == pytest.approx(sig(5.0))
    assert twenty.delta_loss == pytest.approx(0.20)  # the recorded delta is not clipped


def test_worse_benchmark_gives_a_term_below_one_half():
    b = compute_fitness(run(benchmark=0.45), BASE)
    assert b.delta_bench == pytest.approx(-0.10)
    assert b.bench_term == pytest.approx(sig(-5.0))
    assert b.bench_term < 0.5


def test_near_zero_baseline_benchmark_uses_the_absolute_difference():
    base = BASE.model_copy(update={"benchmark_mean": 0.0})
    b = compute_fitness(run(benchmark=0.02), base)
    assert b.delta_bench == pytest.approx(0.02)
    assert b.bench_term == pytest.approx(sig(1.0))


def test_steepness_and_window_are_configurable():
    cfg = FitnessConfig(window=0.2, steepness=10.0, formula="asi-arch")
    b = compute_fitness(run(val_loss=3.2), BASE, cfg)
    assert b.loss_term == pytest.approx(sig(2.0))


def test_missing_llm_judge_is_the_mean_of_the_two_remaining_terms():
    cfg = FitnessConfig(judge="llm", formula="asi-arch")
    b = compute_fitness(run(val_loss=3.8, benchmark=0.45), BASE, cfg, judge_score=None)
    assert b.judge_kind == "missing" and b.judge_term is None
    assert b.fitness == pytest.approx((sig(2.5) + sig(-5.0)) / 2)


def test_llm_judge_score_is_the_third_term():
    b = compute_fitness(run(), BASE, FitnessConfig(judge="llm"), judge_score=0.8)
    assert b.judge_kind == "llm" and b.fitness == pytest.approx((0.5 + 0.5 + 0.8) / 3)
    with pytest.raises(ValueError):
        compute_fitness(run(), BASE, FitnessConfig(judge="llm"), judge_score=1.5)


def test_efficiency_judge_rewards_fewer_flops_and_fewer_parameters():
    # 100k / 95238 - 1 = 0.05 -> σ(2.5)
    b = compute_fitness(run(flops=100_000.0 / 1.05, params=50_000), BASE)
    assert b.judge_parts["flops"] == pytest.approx(sig(2.5))
    # 40k/50k - 1 = -0.2, clipped to the window's edge -0.1
    assert b.judge_parts["params"] == pytest.approx(sig(-5.0))
    assert b.judge_term == pytest.approx((sig(2.5) + sig(-5.0)) / 2)


def test_efficiency_is_capped_by_quality_so_a_mixer_that_mixes_nothing_cannot_win():
    # the no-mixing floor at nano, as measured: loss a hair better than DeltaNet's, MQAR 0.06 against
    # the baseline's 0.93, and a small fraction of its FLOPs and parameters
    ref = BASE.model_copy(update={"val_loss_mean": 5.286, "val_loss_std": 0.028, "benchmark_mean": 0.926,
                                  "benchmark_std": 0.088})
    floor = run(val_loss=5.274, benchmark=0.062, flops=20_000.0, params=8_000)
    baseline = run(val_loss=5.286, benchmark=0.926)
    for formula in ("asi-arch", "seed-sigma"):
        cfg = FitnessConfig(formula=formula)
        f, b = compute_fitness(floor, ref, cfg), compute_fitness(baseline, ref, cfg)
        assert f.judge_parts["flops"] > 0.99 and f.judge_parts["params"] > 0.99  # efficiency itself is high
        assert f.judge_cap == pytest.approx((f.loss_term + f.bench_term) / 2) == f.judge_term
        assert f.fitness < b.fitness
    # a cheaper mixer that is as good as the baseline keeps its whole efficiency credit
    cheap = compute_fitness(run(val_loss=3.95, benchmark=0.55, flops=90_000.0), BASE)
    assert cheap.judge_cap is None and cheap.judge_term == pytest.approx(cheap.judge_parts["flops"] / 2 + 0.25)


def test_wall_clock_throughput_is_not_scored():
    # the same architecture measured on a busy and on a quiet machine scores the same
    busy, quiet = compute_fitness(run(tokens_per_s=2_300.0), BASE), compute_fitness(run(tokens_per_s=10_700.0), BASE)
    assert busy.fitness == quiet.fitness and "throughput" not in busy.judge_parts


def test_baseline_reference_carries_the_probe_flops():
    ref = baseline_ref_from_runs([run(flops=90.0, seed=0), run(flops=110.0, seed=1)])
    assert ref.flops_per_token_mean == pytest.approx(100.0)


def test_seed_sigma_formula_measures_deltas_in_baseline_seed_sd():
    cfg = FitnessConfig(formula="seed-sigma")
    # loss 0.02 below the baseline, whose seed sd is 0.01: z = 2 -> σ(2)
    b = compute_fitness(run(val_loss=3.98), BASE, cfg)
    assert b.loss_term == pytest.approx(sig(2.0))
    # benchmark 0.5 -> 0.3 with sd 0.02: z = -10, clipped to -5
    assert compute_fitness(run(benchmark=0.3), BASE, cfg).bench_term == pytest.approx(sig(-5.0))
    # asi-arch maps the same 0.5 % loss gain to σ(0.25): the seed-sigma term sees it as 2 σ of noise
    assert compute_fitness(run(val_loss=3.98), BASE).loss_term == pytest.approx(sig(0.25))


def test_seed_sigma_without_a_baseline_sd_falls_back_to_the_relative_delta():
    one_seed = BASE.model_copy(update={"n": 1, "val_loss_std": math.nan})
    b = compute_fitness(run(val_loss=3.8), one_seed, FitnessConfig(formula="seed-sigma"))
    assert b.loss_term == pytest.approx(sig(2.5))


def test_efficiency_judge_without_measurements_is_missing():
    b = compute_fitness(run(tokens_per_s=None, params=None, flops=None), BASE)
    assert b.judge_kind == "missing" and b.judge_term is None and b.fitness == 0.5


def test_no_benchmark_omits_the_bench_term():
    b = compute_fitness(run(val_loss=3.8, benchmark=None), BASE)
    assert b.bench_term is None and b.delta_bench is None
    assert b.fitness == pytest.approx((sig(2.5) + 0.5) / 2)


def test_leak_alarm_at_twelve_percent_lower_loss():
    assert compute_fitness(run(val_loss=4.0 * 0.88), BASE).leak_alarm
    assert not compute_fitness(run(val_loss=4.0 * 0.92), BASE).leak_alarm
    assert not compute_fitness(run(val_loss=4.0 * 0.88), BASE, FitnessConfig(leak_threshold=0.15)).leak_alarm


def test_failed_run_has_no_fitness():
    bad = failed_result(candidate_hash="c", preset="tiny", seed=0, kind=FailureKind.nan, message="nan loss")
    with pytest.raises(ValueError):
        compute_fitness(bad, BASE)


def test_baseline_ref_from_runs_uses_sample_std_and_skips_failures():
    runs = [
        run(val_loss=4.0, benchmark=0.50, tokens_per_s=9_000.0, params=40_000, seed=0),
        run(val_loss=4.2, benchmark=0.60, tokens_per_s=11_000.0, params=40_000, seed=1),
        run(val_loss=4.4, benchmark=None, tokens_per_s=10_000.0, params=40_000, seed=2),
        failed_result(candidate_hash="c", preset="tiny", seed=3, kind=FailureKind.timeout, message="slow"),
    ]
    ref = baseline_ref_from_runs(runs)
    assert ref.n == 3
    assert ref.val_loss_mean == pytest.approx(4.2)
    assert ref.val_loss_std == pytest.approx(0.2)  # ddof=1: sqrt((0.04 + 0 + 0.04) / 2)
    assert ref.benchmark_mean == pytest.approx(0.55)
    assert ref.benchmark_std == pytest.approx(math.sqrt(0.005))
    assert ref.tokens_per_s_mean == pytest.approx(10_000.0) and ref.tokens_per_s_std == pytest.approx(1_000.0)
    assert ref.params_mean == 40_000 and ref.params_std == 0.0


def test_baseline_ref_from_one_run_has_unknown_std_and_no_benchmark():
    ref = baseline_ref_from_runs([run(benchmark=None)])
    # the one rule for n = 1 (seedstats.seed_stats), as in the noise floor: one seed measures no noise
    assert ref.n == 1 and math.isnan(ref.val_loss_std)
    assert math.isnan(noise_floor({"val_loss": [ref.val_loss_mean]}).metrics["val_loss"].std)
    assert ref.benchmark_mean is None and ref.benchmark_std is None


def test_baseline_ref_needs_a_successful_run():
    with pytest.raises(ValueError):
        baseline_ref_from_runs([failed_result(candidate_hash="c", preset="t", seed=0,
                                              kind=FailureKind.crash, message="segv")])


# -- the loss term built from the loss on associative-recall hits (lm_term) ------------------------

AR_BASE = BASE.model_copy(update={"ar_hit_loss_mean": 3.0, "ar_hit_loss_std": 0.05})


def ar_run(val_loss=4.0, ar_hit_loss=3.0, **kw) -> RunResult:
    r = run(val_loss=val_loss, **kw)
    r.ar_hit_loss = ar_hit_loss
    return r


def test_the_default_loss_term_stays_the_val_loss_and_records_the_ar_delta():
    cfg = FitnessConfig(formula="seed-sigma")
    b = _compute_fitness(ar_run(val_loss=3.98, ar_hit_loss=3.3), AR_BASE, cfg)
    assert b.lm_term == "val_loss" and b.loss_term == pytest.approx(sig(2.0))
    assert b.delta_ar_hit == pytest.approx(-0.1)


def test_ar_hit_term_measures_the_ar_hit_loss_in_its_own_seed_sd():
    cfg = FitnessConfig(formula="seed-sigma", lm_term="ar_hit")
    # val loss better than the baseline (a floor's bigram statistics), AR hits 0.1 = 2 σ worse
    b = _compute_fitness(ar_run(val_loss=3.98, ar_hit_loss=3.1), AR_BASE, cfg)
    assert b.lm_term == "ar_hit" and b.loss_term == pytest.approx(sig(-2.0))
    assert b.delta_loss == pytest.approx(0.005)  # still the val loss's, for the leak alarm
    # asi-arch: the relative Δ, (3.0 - 3.1) / 3.0
    rel = _compute_fitness(ar_run(ar_hit_loss=3.1), AR_BASE, FitnessConfig(formula="asi-arch", lm_term="ar_hit"))
    assert rel.loss_term == pytest.approx(sig(50 * -0.1 / 3.0))


def test_mean_term_averages_the_two_deltas_in_baseline_seed_sd():
    cfg = FitnessConfig(formula="seed-sigma", lm_term="mean")
    # val loss +2 σ (0.02 / 0.01), AR hits -4 σ (0.2 / 0.05): mean z = -1
    b = _compute_fitness(ar_run(val_loss=3.98, ar_hit_loss=3.2), AR_BASE, cfg)
    assert b.lm_term == "mean" and b.loss_term == pytest.approx(sig(-1.0))
    rel = _compute_fitness(ar_run(val_loss=3.8, ar_hit_loss=3.0), AR_BASE, FitnessConfig(formula="asi-arch", lm_term="mean"))
    assert rel.loss_term == pytest.approx(sig(50 * 0.025))  # mean of 5 % and 0 %


def test_ar_hit_term_falls_back_to_the_val_loss_for_runs_without_it():
    cfg = FitnessConfig(formula="seed-sigma", lm_term="ar_hit")
    old_candidate = _compute_fitness(run(val_loss=3.98), AR_BASE, cfg)
    old_baseline = _compute_fitness(ar_run(val_loss=3.98), BASE, cfg)
    for b in (old_candidate, old_baseline):
        assert b.lm_term == "val_loss" and b.loss_term == pytest.approx(sig(2.0)) and b.delta_ar_hit is None


def test_baseline_reference_has_an_ar_hit_loss_only_when_every_run_has_one():
    ref = baseline_ref_from_runs([ar_run(ar_hit_loss=3.0, seed=0), ar_run(ar_hit_loss=3.2, seed=1)])
    assert ref.ar_hit_loss_mean == pytest.approx(3.1) and ref.ar_hit_loss_std == pytest.approx(math.sqrt(0.02))
    mixed = baseline_ref_from_runs([ar_run(ar_hit_loss=3.0, seed=0), run(seed=1)])
    assert mixed.ar_hit_loss_mean is None and mixed.ar_hit_loss_std is None
