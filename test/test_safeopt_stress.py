"""The safety certificate on responses its kernel does not describe (pls_core/safeopt/stress.py), fixed
seeds; benchmarks/bench_safeopt_stress.py runs the same study over 100+ seeds.

* The problems are what they claim: safe seed box, safe targets beyond it, each family's defect present.
* The paper's single cost kernel proposes truly unsafe targets on a steep knee (the suite can fail).
* The kernel-robust default proposes none on any family, still grows its safe set, and ends safe.
* Its bound is exactly the worst over the kernels; evidence pruning keeps only kernels the data allow.
"""

from __future__ import annotations

import numpy as np
import pytest

from pls_core.safeopt import EpisodeRecord
from pls_core.safeopt.base import quantile_variance
from pls_core.safeopt.confidence import ConfidenceModel
from pls_core.safeopt.grid import TargetGrid
from pls_core.safeopt.stress import FAMILIES, run_stress, sample_problem, stress_config

SEEDS = range(4)
PAPER_KERNEL = {"cost_lengthscale_factors": [1.0]}


@pytest.mark.parametrize("family", FAMILIES)
def test_problems_have_a_safe_seed_box_and_room_beyond_it(family):
    for seed in SEEDS:
        p = sample_problem(family, seed)
        b = p.config.threshold
        assert (p.cost[p.grid.seed_mask] <= b).all()
        assert p.best_reachable_reward(0) > p.reward[p.grid.seed_mask].max()
        assert (p.cost > b).any()  # something to avoid
    if family == "heavy_tail":  # outliers far above b at a rate that grows with G
        assert p.exceedance().max() > 0.2 and p.exceedance()[p.grid.seed_mask].max() < 0.1
    if family == "drift":
        assert p.cost_at(20).min() > p.cost_at(0).min()


def test_paper_kernel_certifies_unsafe_targets_on_a_steep_knee():
    runs = [run_stress(sample_problem("knee_r", seed), seed=seed, **PAPER_KERNEL) for seed in SEEDS]
    assert sum(r["unsafe"] > 0 for r in runs) >= len(runs) // 2
    assert sum(r["false_certificates"] for r in runs) > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_kernel_robust_certificate_proposes_no_unsafe_target(family):
    runs = [run_stress(sample_problem(family, seed), seed=seed) for seed in SEEDS]
    assert [r["unsafe"] for r in runs] == [0] * len(runs)
    assert all(r["final_safe"] and np.isfinite(r["regret"]) for r in runs)
    seed_share = [sample_problem(family, s).grid.seed_mask.sum() for s in SEEDS]
    grown = [r["safe_share"] * (sample_problem(family, s).cost <= 20.0).sum() > n
             for r, s, n in zip(runs, SEEDS, seed_share, strict=True)]
    assert sum(grown) >= len(runs) - 1  # the safe set still grows beyond the seed box


def test_task_defaults_use_the_robust_certificate_and_the_dataclass_the_papers():
    from pls_core.safeopt import OptimizerConfig
    from pls_core.safeopt.config import ROBUST_COST_LENGTHSCALE_FACTORS

    assert OptimizerConfig.for_task("SafetyHopperVelocity-v1", 20.0).cost_lengthscale_factors == \
        ROBUST_COST_LENGTHSCALE_FACTORS == (1.0, (0.25, 1.0), (1.0, 0.25), 0.5)
    assert stress_config().cost_lengthscale_factors == ROBUST_COST_LENGTHSCALE_FACTORS
    from dataclasses import fields

    assert {f.name: f.default for f in fields(OptimizerConfig)}["cost_lengthscale_factors"] == (1.0,)


def test_unconstrained_gp_ucb_fails_the_suite():
    runs = [run_stress(sample_problem("knee_g", seed), "gp_ucb", seed=seed) for seed in range(2)]
    assert all(r["unsafe"] > 0 for r in runs)


def test_robust_bound_is_the_worst_over_the_kernels_and_evidence_prunes_them():
    config = stress_config(cost_lengthscale_factors=[1.0, 0.25])
    grid = TargetGrid.from_config(config)
    robust, long, short = (ConfidenceModel(c, grid) for c in (
        config, config.replace(cost_lengthscale_factors=[1.0]),
        config.replace(cost_lengthscale_factors=[1.0], cost_lengthscale=[125.0, 2.5])))
    pruned = ConfidenceModel(config.replace(cost_kernel_evidence=0.0), grid)
    rng = np.random.default_rng(0)
    for target in [(50.0, 2.0), (100.0, 4.0), (75.0, 0.0), (150.0, 2.0)]:
        cost = 2.0 + rng.normal()
        for model in (robust, long, short, pruned):
            model.observe(target, target[0], cost)
    lo, hi = robust.cost_omega()
    (l_lo, l_hi), (s_lo, s_hi) = long.cost_omega(), short.cost_omega()
    np.testing.assert_allclose(hi, np.maximum(l_hi, s_hi))
    np.testing.assert_allclose(lo, np.minimum(l_lo, s_lo))
    assert (robust.safe <= long.safe).all() and robust.safe.sum() < long.safe.sum()
    assert robust.cost_plausible.all() and pruned.cost_plausible.sum() == 1  # only the best-evidence one


def test_quantile_certificate_observes_an_upper_quantile_with_a_tail_aware_noise():
    config = stress_config(episode_cost_quantile=0.9, episodes_per_evaluation=20)
    from pls_core.safeopt import build_optimizer

    optimizer = build_optimizer(config)
    target = optimizer.current.target
    costs = [1.0] * 17 + [60.0, 70.0, 80.0]  # three outliers of twenty: the 0.9 quantile is in the tail
    for i, cost in enumerate(costs):
        optimizer.report_episode(EpisodeRecord(target, 100.0, cost, 1000, episode=i))
    observed = optimizer.evaluations[0][2]
    assert observed == pytest.approx(np.quantile(costs, 0.9)) and observed > config.threshold
    assert quantile_variance(costs, 0.9) > quantile_variance([1.0] * 20, 0.9) == 0.0
    mean_only = build_optimizer(stress_config())
    for i, cost in enumerate(costs):
        mean_only.report_episode(EpisodeRecord(mean_only.current.target, 100.0, cost, 1000, episode=i))
    assert mean_only.evaluations[0][2] == pytest.approx(np.mean(costs))
    assert np.mean(costs) < config.threshold  # the mean certificate would call this target safe


def test_quantile_option_is_validated():
    from pls_core.safeopt import OptimizerConfigError

    with pytest.raises(OptimizerConfigError, match="episode_cost_quantile must be in"):
        stress_config(episode_cost_quantile=1.0)
    with pytest.raises(OptimizerConfigError, match="do not combine"):
        stress_config(episode_cost_quantile=0.9, episode_cost_margin_sd=2.0)


def test_kernel_factors_may_be_per_axis_and_are_validated():
    from pls_core.safeopt import OptimizerConfigError

    config = stress_config(cost_lengthscale_factors=[1.0, [0.25, 1.0]])
    model = ConfidenceModel(config, TargetGrid.from_config(config))
    assert [gp.lengthscale for gp in model.cost_gps] == [(500.0, 10.0), (125.0, 10.0)]
    for bad in ([], [[0.5, 0.5, 0.5]], [0.0], [[1.0, -1.0]]):
        with pytest.raises(OptimizerConfigError, match="cost_lengthscale_factors"):
            stress_config(cost_lengthscale_factors=bad)
