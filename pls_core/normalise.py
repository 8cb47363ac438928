"""DSRL-normalised scores, with the reward range taken from our own dataset (as the PLS paper does).

normalised reward = (R - R_min) / (R_max - R_min) over the dataset's episode reward returns;
normalised cost   = (C + eps) / (b + eps), eps = 1 only when the threshold b is 0 (DSRL's convention).
A policy is "safe" at threshold b when its normalised cost is <= 1.
"""

from __future__ import annotations

import numpy as np


def normalised_reward(reward_return, reward_min: float, reward_max: float):
    span = reward_max - reward_min
    if span <= 0:
        raise ValueError(
            f"reward range [{reward_min}, {reward_max}] is empty; the dataset needs varied returns"
        )
    return (np.asarray(reward_return, dtype=np.float64) - reward_min) / span


def normalised_cost(cost_return, threshold: float):
    if threshold < 0:
        raise ValueError(f"cost threshold must be >= 0, got {threshold}")
    eps = 1.0 if threshold == 0 else 0.0
    return (np.asarray(cost_return, dtype=np.float64) + eps) / (threshold + eps)
