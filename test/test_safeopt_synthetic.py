"""Acceptance study on synthetic problems with known safe regions (a faster copy of
benchmarks/bench_safeopt.py's study): 50 seeds, true J_r and J_g drawn from the GP prior PLS assumes.

* PLS: the share of runs with any unsafe proposal must be consistent with delta (binomial test), and
  the operating target must be within 5% of the reward range of the best target reachable from Z0
  through points with J_g <= 0.8 b (Theorem 3's comparator on the grid) in >= 90% of the seeds.
* Unconstrained GP-UCB on the same problems must propose unsafe targets (the check can fail).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from pls_core.safeopt import build_optimizer
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config

SEEDS = range(50)
TOLERANCE = 0.05  # of the reward range over the grid
MARGIN = 0.2  # of the threshold


def study(method: str) -> list[dict]:
    results = []
    for seed in SEEDS:
        config = synthetic_config(seed=seed, method=method)
        problem = SyntheticProblem.sample(config, seed)
        history = run(build_optimizer(config), problem, config.max_exploration_iterations +
                      config.max_maximisation_iterations)
        final, spread = problem.reward[problem.index(history[-1].target)], np.ptp(problem.reward)
        penalty = 0.0 if problem.is_safe(history[-1].target) else np.inf  # unsafe final: never within
        results.append({
            "unsafe": sum(not problem.is_safe(d.target) for d in history[:-1]), "proposals": len(history) - 1,
            "gap": (problem.best_reachable_reward(MARGIN * config.threshold) - final) / spread + penalty,
            "gap_all_safe": (problem.best_safe_reward - final) / spread + penalty, "delta": config.delta})
    return results


@pytest.fixture(scope="module")
def pls_results():
    return study("pls")


def test_pls_unsafe_proposal_rate_is_consistent_with_delta(pls_results):
    failed_runs = sum(r["unsafe"] > 0 for r in pls_results)
    unsafe = sum(r["unsafe"] for r in pls_results)
    proposals = sum(r["proposals"] for r in pls_results)
    delta = pls_results[0]["delta"]
    print(f"\nPLS: {failed_runs}/{len(pls_results)} runs with an unsafe proposal (delta = {delta}); "
          f"{unsafe}/{proposals} unsafe proposals")
    assert binom.sf(failed_runs - 1, len(pls_results), delta) > 0.01  # not significantly above delta


def test_pls_operates_near_the_best_reachable_safe_target(pls_results):
    within = np.mean([r["gap"] <= TOLERANCE for r in pls_results])
    within_all = np.mean([r["gap_all_safe"] <= TOLERANCE for r in pls_results])
    print(f"\nPLS: final target within {TOLERANCE:.0%} of the reward range of the best reachable safe target "
          f"in {within:.0%} of seeds ({within_all:.0%} against the best safe target overall)")
    assert within >= 0.9


def test_unconstrained_gp_ucb_proposes_unsafe_targets():
    results = study("gp_ucb")
    failed_runs = sum(r["unsafe"] > 0 for r in results)
    unsafe = sum(r["unsafe"] for r in results)
    print(f"\nGP-UCB: {failed_runs}/{len(results)} runs with an unsafe proposal; "
          f"{unsafe}/{sum(r['proposals'] for r in results)} unsafe proposals")
    assert failed_runs >= len(results) // 2
