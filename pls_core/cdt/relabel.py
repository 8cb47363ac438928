"""CDT's Pareto-frontier return relabelling (data augmentation).

Targets (G, R) are drawn *above* the dataset's reward-vs-cost frontier and attached to real trajectories
that cost no more than G and earn not much less than R; the trajectory's return-to-go and cost-to-go are
shifted to start at the target. The model thereby learns that asking for more reward than the data holds
at a given cost should still give the best behaviour within that cost, instead of anything at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Relabel:
    """One augmented trajectory: episode `source` of the dataset, conditioned on (reward, cost) instead."""

    source: int
    reward: float
    cost: float


def grid_filter(
    costs,
    rewards,
    cost_bins: int = 10,
    reward_bins: int = 50,
    min_per_bin: int = 2,
    max_per_bin: int = 10,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices that survive a grid filter: sparse cells (outliers) are dropped, dense ones thinned."""
    rng = rng or np.random.default_rng(0)
    cell_c = np.digitize(costs, np.linspace(costs.min(), costs.max(), cost_bins + 1)[1:-1])
    cell_r = np.digitize(rewards, np.linspace(rewards.min(), rewards.max(), reward_bins + 1)[1:-1])
    cells = cell_c * reward_bins + cell_r
    keep = []
    for cell in np.unique(cells):
        members = np.flatnonzero(cells == cell)
        if len(members) >= min_per_bin:
            keep.extend(rng.permutation(members)[:max_per_bin])
    return np.sort(np.asarray(keep, dtype=np.int64))


def pareto_indices(costs, rewards) -> np.ndarray:
    """Indices of the non-dominated points (lower cost and higher reward are better)."""
    order = np.lexsort((-rewards, costs))  # by cost, ties by reward descending
    best = -np.inf
    front = []
    for i in order:
        if rewards[i] > best:
            front.append(i)
            best = rewards[i]
    return np.asarray(front, dtype=np.int64)


def pareto_relabel(
    cost_returns,
    reward_returns,
    n_targets: int,
    *,
    deg: int,
    max_reward: float,
    max_rew_decrease: float,
    min_reward: float = 1.0,
    beta: float = 0.1,
    rng: np.random.Generator,
) -> list[Relabel]:
    """Draw `n_targets` relabelled trajectories above the fitted frontier (OSRL's augmentation, re-derived).

    Costs of the targets span the dataset's cost range evenly; each reward is uniform between the frontier
    (+min_reward) and `max_reward`. A target goes to a trajectory with cost <= its G and reward >= its
    R - max_rew_decrease, chosen with probability ~ 1 / (distance + beta) in normalised (cost, reward); a
    target that no trajectory can serve is dropped, so fewer than `n_targets` may come back.
    """
    costs = np.asarray(cost_returns, dtype=np.float64)
    rewards = np.asarray(reward_returns, dtype=np.float64)
    if n_targets <= 0 or len(costs) < 2:
        return []
    kept = grid_filter(costs, rewards, rng=rng)
    if len(kept) < 2:
        kept = np.arange(len(costs))
    front = kept[pareto_indices(costs[kept], rewards[kept])]
    frontier = np.poly1d(np.polyfit(costs[front], rewards[front], deg=min(deg, len(front) - 1)))

    cost_span = max(costs.max() - costs.min(), 1e-6)
    reward_span = max(rewards.max() - rewards.min(), 1e-6)
    relabels = []
    for target_cost in np.linspace(costs.min(), costs.max(), n_targets):
        low = min(frontier(target_cost) + min_reward, max_reward)
        target_reward = rng.uniform(low, max_reward)
        ok = np.flatnonzero((costs <= target_cost) & (rewards >= target_reward - max_rew_decrease))
        if len(ok) == 0:
            continue
        distance = np.hypot(
            (costs[ok] - target_cost) / cost_span, (rewards[ok] - target_reward) / reward_span
        )
        weights = 1.0 / (distance + beta)
        source = int(rng.choice(ok, p=weights / weights.sum()))
        relabels.append(Relabel(source, float(target_reward), float(target_cost)))
    return relabels
