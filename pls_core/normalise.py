"""Normalised scores on two scales: our dataset's reward range, and DSRL's published one.

normalised reward = (R - R_min) / (R_max - R_min);
normalised cost   = (C + eps) / (b + eps), eps = 1 only when the threshold b is 0 (DSRL's convention).
A policy is "safe" at threshold b when its normalised cost is <= 1.

Two reward ranges: "ours" takes R_min/R_max from the episodes of the dataset the model was trained on;
"DSRL" takes the per-task constants DSRL publishes for its own datasets (dsrl/infos.py, MIN/MAX_EPISODE_
REWARD), which are what the PLS paper's tables are normalised with. Only the DSRL scale puts our rows
beside the paper's as equals: our datasets' ranges differ from DSRL's (e.g. our Hopper data's best
episode is far below DSRL's). Tasks DSRL has no constants for have no DSRL score (None, printed "n/a").
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


def dsrl_reward_range(task: str) -> tuple[float, float] | None:
    """DSRL's (min, max) episode reward return for `task`, or None where DSRL publishes none."""
    from pls_core.tasks import TASKS

    return TASKS[task].dsrl_reward_range if task in TASKS else None


def dsrl_normalised_reward(reward_return, task: str) -> float | None:
    """A reward return on DSRL's scale (the paper's), or None for a task without DSRL constants."""
    span = dsrl_reward_range(task)
    return None if span is None or reward_return is None else float(normalised_reward(reward_return, *span))


def fmt_score(value: float | None, digits: int = 2) -> str:
    """A normalised score for a table; "n/a" where the scale has no value (no DSRL constants)."""
    return "n/a" if value is None else f"{value:.{digits}f}"
