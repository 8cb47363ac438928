"""DSRL-style grid filter: keep at most a few episodes per cell of the (cost, reward) plane.

Rollouts pile up where the behaviour policies are most at home; thinning per cell gives the even coverage
that lets CDT follow any target return pair across the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridSpec:
    """Grid filter resolution: cost cells span 0..max_cost, reward cells the observed reward range;
    """

    cost_bins: int = 50
    reward_bins: int = 50
    per_cell: int = 2
    drop_falls: bool = False
    # Drop episodes earning less: a behaviour stuck in a crawl for a whole episode. Such episodes are rare,
    # so their sparse low-reward cells keep every one, and a model learns the crawl as one of its gaits.
    min_reward: float | None = None

    def describe(self) -> str:
        """As the dataset's `grid` attribute records it."""
        text = f"cost_bins={self.cost_bins} reward_bins={self.reward_bins} per_cell={self.per_cell}"
        text += " drop_falls" if self.drop_falls else ""
        return text + (f" min_reward={self.min_reward:g}" if self.min_reward is not None else "")

    def eligible(self, rewards: np.ndarray, fell: np.ndarray) -> np.ndarray | None:
        """Which episodes may be kept (None: all): finished ones with drop_falls, and those earning at
        least min_reward."""
        mask = np.ones(len(rewards), dtype=bool)
        if self.drop_falls:
            mask &= ~fell
        if self.min_reward is not None:
            mask &= rewards >= self.min_reward
        return None if mask.all() else mask


def grid_filter(
    costs: np.ndarray, rewards: np.ndarray, max_cost: float, cost_bins: int, reward_bins: int, per_cell: int,
    rng: np.random.Generator, eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted indices of the kept episodes; episodes costing more than `max_cost` are dropped (as DSRL), and
    so are those `eligible` (a boolean mask, e.g. episodes that finished) marks False."""
    mask = costs <= max_cost
    if eligible is not None:
        mask &= eligible
    candidates = np.flatnonzero(mask)
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


def filter_dataset(ds, max_cost: float, grid: GridSpec, seed: int):
    """A dataset's episodes thinned by grid_filter (the same rule `pls collect` applies to its rollouts),
    as a new OfflineDataset whose attrs say how; lets one generous collection be thinned several ways."""
    from pls_core.dataset import DSRL_KEYS, OfflineDataset

    slices = ds.episode_slices()
    rewards, costs, _ = ds.episode_returns(slices)
    eligible = grid.eligible(rewards, ds.episode_terminated(slices))
    kept = grid_filter(costs, rewards, max_cost, grid.cost_bins, grid.reward_bins, grid.per_cell,
                       np.random.default_rng([seed, 1]), eligible)
    if kept.size == 0:
        which = "episode that finished" if grid.drop_falls else "episode"
        which += f" earning at least {grid.min_reward:g}" if grid.min_reward is not None else ""
        raise ValueError(f"no {which} costs at most {max_cost:g}: nothing to keep")
    arrays = {key: np.concatenate([getattr(ds, key)[slices[i]] for i in kept]) for key in DSRL_KEYS}
    attrs = {**ds.attrs, "grid": grid.describe(), "raw_episodes": len(slices),
             "filtered_from": f"{ds.attrs.get('grid', 'unfiltered')}, {len(slices)} episodes, "
                              f"sha256 {ds.sha256[:12]}"}
    return OfflineDataset(**arrays, attrs=attrs)
