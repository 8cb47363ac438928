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


def filter_dataset(ds, max_cost: float, cost_bins: int, reward_bins: int, per_cell: int, seed: int):
    """A dataset's episodes thinned by grid_filter (the same rule `pls collect` applies to its rollouts),
    as a new OfflineDataset whose attrs say how; lets one generous collection be thinned several ways."""
    from pls_core.dataset import DSRL_KEYS, OfflineDataset

    slices = ds.episode_slices()
    rewards, costs, _ = ds.episode_returns(slices)
    kept = grid_filter(costs, rewards, max_cost, cost_bins, reward_bins, per_cell,
                       np.random.default_rng([seed, 1]))
    if kept.size == 0:
        raise ValueError(f"no episode costs at most {max_cost:g}: nothing to keep")
    arrays = {key: np.concatenate([getattr(ds, key)[slices[i]] for i in kept]) for key in DSRL_KEYS}
    grid = f"cost_bins={cost_bins} reward_bins={reward_bins} per_cell={per_cell}"
    attrs = {**ds.attrs, "grid": grid, "raw_episodes": len(slices),
             "filtered_from": f"{ds.attrs.get('grid', 'unfiltered')}, {len(slices)} episodes, "
                              f"sha256 {ds.sha256[:12]}"}
    return OfflineDataset(**arrays, attrs=attrs)
