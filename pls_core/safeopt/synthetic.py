"""Synthetic target-return problems with known answers, for tests, benchmarks and `pls optimize demo`.

A problem draws the true J_r(z), J_g(z) on the grid from the very GP prior the optimizer assumes (prior
mean + output scale x a sample of the kernel), so the Srinivas confidence bounds hold with probability
>= 1 - delta by construction and the unsafe-proposal rate can be checked against delta. Draws whose seed
box is not entirely safe are redrawn (Assumption 7 says Z0 is safe). Episodes add Gaussian noise whose
mean over `episodes_per_evaluation` episodes has exactly the configured noise variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from pls_core.safeopt.base import TargetOptimizer
from pls_core.safeopt.confidence import ConfidenceModel
from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.gp import DTYPE
from pls_core.safeopt.grid import TargetGrid
from pls_core.safeopt.records import Decision, EpisodeRecord

MAX_REDRAWS = 200


def synthetic_config(**overrides) -> OptimizerConfig:
    """A small 2-D problem in the shape of a velocity task: reward grows with R, cost mostly with G.

    Its problems are drawn from the prior the optimizer assumes, so the cost kernel is right by
    construction: one cost kernel (the paper's certificate); stress.py tests the kernel-robust one."""
    base = dict(cost_lengthscale_factors=(1.0,),
        threshold=10.0, reward_range=(0.0, 100.0), cost_range=(0.0, 20.0), seed_reward_range=(0.0, 15.0),
        seed_cost_range=(0.0, 4.0), grid_resolution=(21, 11),
        reward_lengthscale=30.0, reward_kernel_variance=100.0, reward_noise_variance=4.0,
        cost_lengthscale=(30.0, 8.0), cost_kernel_variance=0.25, cost_noise_variance=0.25,
        episodes_per_evaluation=5, max_exploration_iterations=20, max_maximisation_iterations=10, delta=0.1,
        zeta=2.0, cost_return_limits=(-1e6, 1e6), max_episode_length=1000, task="synthetic")
    return OptimizerConfig.from_dict({**base, **overrides})


@dataclass
class SyntheticProblem:
    config: OptimizerConfig
    reward: np.ndarray  # true J_r on the grid (raw)
    cost: np.ndarray  # true J_g on the grid (raw)
    grid: TargetGrid = field(repr=False)

    @classmethod
    def sample(cls, config: OptimizerConfig, seed: int) -> SyntheticProblem:
        rng = np.random.default_rng([seed, 7919])
        model = ConfidenceModel(config, TargetGrid.from_config(config))
        reward_root = _prior_root(model.reward_gp.kernel, model)
        cost_root = _prior_root(model.cost_gp.kernel, model)
        n = model.grid.size
        for _ in range(MAX_REDRAWS):
            reward = model.reward_prior_mean + model.reward_scale * (reward_root @ rng.standard_normal(n))
            cost = model.cost_prior_mean + model.cost_scale * (cost_root @ rng.standard_normal(n))
            if (cost[model.grid.seed_mask] <= config.threshold).all():
                return cls(config, reward, cost, model.grid)
        raise RuntimeError(f"no prior draw in {MAX_REDRAWS} tries had a safe seed box; loosen the problem")

    def index(self, target: tuple[float, float]) -> int:
        index = self.grid.index_of(target)
        if index is None:
            raise ValueError(f"{target} is not a grid point of this problem")
        return index

    def is_safe(self, target: tuple[float, float]) -> bool:
        return bool(self.cost[self.index(target)] <= self.config.threshold)

    @property
    def best_safe_reward(self) -> float:
        """max J_r over every truly safe grid point."""
        return float(self.reward[self.cost <= self.config.threshold].max())

    def best_reachable_reward(self, margin: float) -> float:
        """max J_r over the points reachable from Z0 through grid neighbours (8-connected) with
        J_g <= b - margin: the grid version of Theorem 3's comparator z* (a safe method must certify
        J_g <= b from noisy data, so it can only be asked to reach points with some margin)."""
        inside = (self.cost <= self.config.threshold - margin) | self.grid.seed_mask
        reached = self.grid.seed_mask.copy()
        while True:
            grown = self.grid.dilate(reached) & inside
            if (grown == reached).all():
                break
            reached = grown
        return float(self.reward[reached].max())

    def episode(self, target: tuple[float, float], rng: np.random.Generator, number: int) -> EpisodeRecord:
        i, k = self.index(target), self.config.episodes_per_evaluation
        reward = self.reward[i] + rng.normal() * math.sqrt(k * self.config.reward_noise_variance)
        cost = self.cost[i] + rng.normal() * math.sqrt(k * self.config.cost_noise_variance)
        return EpisodeRecord(target, float(reward), float(cost), 1000, truncated=True, episode=number)


def _prior_root(kernel, model: ConfidenceModel) -> np.ndarray:
    points = torch.as_tensor(model.grid.points, dtype=DTYPE)
    with torch.no_grad():
        k = kernel(points).to_dense()
    jitter = 1e-8 * float(k.diagonal().mean())
    return torch.linalg.cholesky(k + jitter * torch.eye(len(points), dtype=DTYPE)).numpy()


def run(optimizer: TargetOptimizer, problem: SyntheticProblem, evaluations: int,
        on_episode=None) -> list[Decision]:
    """Run episodes until `evaluations` decisions have been evaluated; returns every decision made.

    Episode noise depends only on (problem seed-free counter, episode number), so a run resumed from a
    store continues with the same episodes as an uninterrupted one.
    """
    while optimizer.iteration < evaluations:
        number = optimizer.status()["episodes_total"]
        rng = np.random.default_rng([optimizer.config.seed, 104729, number])
        optimizer.report_episode(problem.episode(optimizer.current.target, rng, number))
        if on_episode is not None:
            on_episode(optimizer)
    return list(optimizer.history)
