"""CDT's Pareto-frontier return relabelling (data augmentation).

Targets (G, R) are drawn *above* the dataset's reward-vs-cost frontier and attached to the nearest real
trajectories that cost no more than G; the trajectory's return-to-go and cost-to-go are shifted to start
at the target. The model thereby learns that asking for more reward than the data holds
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
    beta: float = 1.0,
    rng: np.random.Generator,
) -> list[Relabel]:
    """`n_targets` relabelled trajectories above the fitted frontier (OSRL's CDT augmentation, re-derived).

    1. The frontier: a degree-`deg` polynomial through the non-dominated trajectories (outliers removed by
       a grid filter first).
    2. Target costs G span the dataset's cost range evenly; each target reward R is uniform between the
       frontier at G (+ `min_reward`) and `max_reward`.
    3. Each target goes to the trajectory nearest to it in raw (cost, reward) units among those that cost
       no more than G. Every target is kept: asking for more than the data hold at a cost is exactly
       what the model must learn to answer with the best behaviour within that cost.
    4. A trajectory nearest to several targets keeps the first; each further one goes to a trajectory
       that costs no more and earns at most `max_rew_decrease` less than it, drawn with probability
       ~ 1 / (distance + `beta`), so one episode is not copied many times.
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

    target_costs = np.linspace(costs.min(), costs.max(), n_targets)
    low = np.minimum(frontier(target_costs) + min_reward, max_reward)
    target_rewards = rng.uniform(low, max_reward)
    cheapest = int(np.argmin(costs))
    taken: set[int] = set()
    relabels = []
    for target_cost, target_reward in zip(target_costs, target_rewards, strict=True):
        cheap = np.flatnonzero(costs <= target_cost)
        if len(cheap) == 0:
            nearest = cheapest
        else:
            distance = np.hypot(costs[cheap] - target_cost, rewards[cheap] - target_reward)
            nearest = int(cheap[np.argmin(distance)])
        source = nearest
        if nearest in taken:
            near = np.flatnonzero((costs <= costs[nearest])
                                  & (rewards >= rewards[nearest] - max_rew_decrease))
            weights = 1.0 / (np.hypot(costs[near] - costs[nearest], rewards[near] - rewards[nearest]) + beta)
            source = int(rng.choice(near, p=weights / weights.sum()))
        taken.add(nearest)
        relabels.append(Relabel(source, float(target_reward), float(target_cost)))
    return relabels
