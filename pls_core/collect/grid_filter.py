"""DSRL-style grid filter: keep at most a few episodes per cell of the (cost, reward) plane.

Rollouts pile up where the behaviour policies are most at home; thinning per cell gives the even coverage
that lets CDT follow any target return pair across the range.
"""

from __future__ import annotations

import numpy as np


def grid_filter(
    costs: np.ndarray, rewards: np.ndarray, max_cost: float, cost_bins: int, reward_bins: int, per_cell: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted indices of the kept episodes; episodes costing more than `max_cost` are dropped (as DSRL)."""
    candidates = np.flatnonzero(costs <= max_cost)
    if candidates.size == 0:
        return candidates
    r_lo, r_hi = rewards[candidates].min(), rewards[candidates].max()
    c_cell = np.minimum((costs[candidates] / max_cost * cost_bins).astype(int), cost_bins - 1)
    r_cell = np.minimum(((rewards[candidates] - r_lo) / max(r_hi - r_lo, 1e-9) * reward_bins).astype(int),
                        reward_bins - 1)
    cell = c_cell * reward_bins + r_cell
    kept = []
    for value in np.unique(cell):
        members = candidates[cell == value]
        take = min(per_cell, members.size)
        kept.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(kept))
