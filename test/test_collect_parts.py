"""The pieces of collection that need no trained policy: wrapper, episode plans, grid filter."""

from __future__ import annotations

import numpy as np
import pytest

from pls_core.collect.episodes import plan_episodes
from pls_core.collect.grid_filter import grid_filter
from pls_core.collect.wrappers import CostPenaltyEnv
from pls_core.envs import make_env


def test_cost_penalty_wrapper_folds_cost_into_reward_and_keeps_raw_values():
    env = CostPenaltyEnv(make_env("SafetyHopperVelocity-v1", seed=0), cost_penalty=3.0)
    env.reset(seed=0)
    seen_cost = False
    for _ in range(200):
        _, shaped, terminated, truncated, info = env.step(np.ones(3, dtype=np.float32))
        assert shaped == info["reward"] - 3.0 * info["cost"]
        seen_cost |= info["cost"] > 0
        if terminated or truncated:
            env.reset()
    assert seen_cost  # full-throttle hopping exceeds Hopper's 0.74 m/s limit at some step


def test_speed_margin_moves_the_penalty_below_the_limit_and_keeps_the_real_cost():
    """speed_margin 0.5: penalised wherever the hopper runs faster than half its limit, which happens on
    steps that cost nothing; info still holds the task's own cost. A task without a limit is refused."""
    env = CostPenaltyEnv(make_env("SafetyHopperVelocity-v1", seed=0), cost_penalty=3.0, speed_margin=0.5)
    limit = env.unwrapped._velocity_threshold
    env.reset(seed=0)
    margin_only = 0
    for _ in range(200):
        _, shaped, terminated, truncated, info = env.step(np.ones(3, dtype=np.float32))
        faster = info["x_velocity"] > 0.5 * limit
        assert shaped == info["reward"] - 3.0 * faster
        assert info["cost"] == float(info["x_velocity"] > limit)
        margin_only += faster and info["cost"] == 0
        if terminated or truncated:
            env.reset()
    assert margin_only > 0
    with pytest.raises(ValueError, match="needs a velocity task"):
        CostPenaltyEnv(make_env("SafetyCarCircle1-v0", seed=0), cost_penalty=1.0, speed_margin=0.9)


def test_episode_plans_are_seeded_and_bounded():
    plans = plan_episodes(200, seed=1, max_fast_share=0.5)
    assert plans == plan_episodes(200, seed=1, max_fast_share=0.5)
    assert plans != plan_episodes(200, seed=2, max_fast_share=0.5)
    shares = np.array([p.fast_share for p in plans])
    throttles = np.array([p.throttle for p in plans])
    assert shares.min() >= 0 and shares.max() <= 0.5 and np.median(shares) < 0.25  # low cost dominates
    assert throttles.min() >= 0.4 and (throttles == 1.0).mean() > 0.2
    firm = plan_episodes(200, seed=1, max_fast_share=0.5, min_throttle=0.8)  # Walker2d's
    assert min(p.throttle for p in firm) >= 0.8 and min(p.throttle for p in firm) < 0.85
    assert [p.fast_share for p in firm] == shares.tolist()  # only the throttle range moved


def test_grid_filter_caps_each_cell_and_drops_costs_above_max():
    rng = np.random.default_rng(0)
    costs = np.concatenate([np.full(50, 10.0), rng.uniform(0, 100, 50), [150.0]])
    rewards = np.concatenate([np.full(50, 500.0), [0.0, 1000.0], rng.uniform(0, 1000, 48), [900.0]])
    kept = grid_filter(costs, rewards, max_cost=100.0, cost_bins=10, reward_bins=10, per_cell=2,
                       rng=np.random.default_rng(1))
    assert 100 not in kept
    assert np.sum(kept < 50) <= 2  # the 50 identical episodes share one cell
    assert np.all(np.diff(kept) > 0)
    cells = np.minimum(costs[kept] // 10, 9) * 10 + np.minimum(rewards[kept] // (1000 / 10), 9)
    assert np.unique(cells, return_counts=True)[1].max() <= 2


def test_grid_filter_keeps_only_eligible_episodes():
    costs = np.array([5.0, 5.0, 50.0, 50.0, 90.0])
    rewards = np.array([100.0, 100.0, 400.0, 400.0, 800.0])
    finished = np.array([False, True, True, False, False])
    kept = grid_filter(costs, rewards, max_cost=100.0, cost_bins=10, reward_bins=10, per_cell=5,
                       rng=np.random.default_rng(0), eligible=finished)
    assert kept.tolist() == [1, 2]
    none = grid_filter(costs, rewards, 100.0, 10, 10, 5, np.random.default_rng(0), np.zeros(5, dtype=bool))
    assert none.size == 0
