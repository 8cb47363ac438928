"""Per-episode perturbation plans: what spreads the rollouts over the (cost, reward) plane.

Each episode acts, segment by segment, with the fast policy with probability `fast_share` and with the
safe one otherwise (mean speed, hence cost, grows with the share), scales the actions by `throttle` (slower,
cheaper, lower reward) and adds Gaussian `action_noise` (worse reward at a given cost, so the data also
holds sub-optimal episodes below the frontier, as DSRL's does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEGMENT_STEPS = 25  # ~1 s of HalfCheetah: long enough for a gait to settle after a switch
DEFAULT_MAX_ACTION_NOISE = 0.6
DEFAULT_MIN_THROTTLE = 0.4


@dataclass(frozen=True)
class EpisodePlan:
    index: int
    env_seed: int
    fast_share: float
    throttle: float
    action_noise: float
    budget: float = 0.0  # the episode cost a budget-conditioned behaviour policy is asked to hold

    def rng(self, seed: int) -> np.random.Generator:
        """The episode's own stream, so results do not depend on which worker runs it or in what order."""
        return np.random.default_rng([seed, self.index])


def plan_episodes(
    n: int, seed: int, max_fast_share: float, max_action_noise: float = DEFAULT_MAX_ACTION_NOISE,
    min_throttle: float = DEFAULT_MIN_THROTTLE,
) -> list[EpisodePlan]:
    """n plans; shares are squared-uniform so low-cost episodes (the region users constrain to) dominate."""
    rng = np.random.default_rng(seed)
    env_seeds = rng.integers(0, 2**31 - 1, size=n)
    shares = max_fast_share * rng.uniform(size=n) ** 2
    # A third of the episodes run at full strength, the rest throttled down to `min_throttle`.
    throttles = np.where(rng.uniform(size=n) < 1 / 3, 1.0, rng.uniform(min_throttle, 1.0, size=n))
    noises = np.where(rng.uniform(size=n) < 0.5, 0.0, rng.uniform(0.0, max_action_noise, size=n))
    return [
        EpisodePlan(i, int(env_seeds[i]), float(shares[i]), float(throttles[i]), float(noises[i]))
        for i in range(n)
    ]


def plan_budget_episodes(
    n: int, seed: int, max_budget: float, max_action_noise: float = DEFAULT_MAX_ACTION_NOISE,
    min_throttle: float = DEFAULT_MIN_THROTTLE,
) -> list[EpisodePlan]:
    """n plans for a budget-conditioned behaviour policy: each episode holds its own budget throughout.

    Budgets are squared-uniform over [0, max_budget] (low-cost episodes, the region users constrain to,
    dominate); throttle and action noise are drawn as in plan_episodes, so the data also hold slower and
    sub-optimal episodes at every budget.
    """
    rng = np.random.default_rng([seed, 2])
    env_seeds = rng.integers(0, 2**31 - 1, size=n)
    budgets = max_budget * rng.uniform(size=n) ** 2
    throttles = np.where(rng.uniform(size=n) < 1 / 3, 1.0, rng.uniform(min_throttle, 1.0, size=n))
    noises = np.where(rng.uniform(size=n) < 0.5, 0.0, rng.uniform(0.0, max_action_noise, size=n))
    return [
        EpisodePlan(i, int(env_seeds[i]), 0.0, float(throttles[i]), float(noises[i]), float(budgets[i]))
        for i in range(n)
    ]
