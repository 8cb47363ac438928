"""The dense grid sweep: every target of an even grid over the optimizers' (R, G) range, per task and b.

For each threshold b, the sweep covers b's candidate grid Z (the set the methods choose from; G runs to
2b), and its best safe cell (highest mean reward among the targets with mean cost <= b) is the reference
for the runs' regret; one sweep serves every method and seed at that b. Cached in
DIR/sweep/<task>_b<b>.json and reused while its fingerprint (model hash, grid, episodes, seed) is unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pls_core.experiment.rollouts import Rollouts
from pls_core.experiment.settings import SWEEP_SEED, SweepSettings


def sweep_path(out_dir: Path, task: str, threshold: float) -> Path:
    return Path(out_dir) / "sweep" / f"{task}_b{threshold:g}.json"


def sweep_targets(config, sweep: SweepSettings) -> list[tuple[float, float]]:
    """An even grid spanning `config`'s candidate grid Z."""
    rewards = np.linspace(*config.reward_range, sweep.reward_points)
    costs = np.linspace(*config.cost_range, sweep.cost_points)
    return [(float(r), float(g)) for r in rewards for g in costs]


def cached_sweep(path: Path, fingerprint: dict) -> dict | None:
    """The sweep stored at `path` if its fingerprint matches, else None (it is then run again)."""
    path = Path(path)
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached["fingerprint"] == fingerprint:
            return cached
    return None


def run_sweep(rollouts: Rollouts, targets, episodes: int, fingerprint: dict,
              on_batch: Callable[[int], None] | None = None) -> dict:
    """`episodes` episodes at every target, seeded from SWEEP_SEED."""
    jobs = [target for target in targets for _ in range(episodes)]
    results = rollouts.run_jobs(jobs, seed=SWEEP_SEED, on_batch=on_batch)
    return {"fingerprint": fingerprint, "targets": [list(t) for t in targets],
            "episodes": [asdict(r) for r in results]}


def save_sweep(path: Path, sweep: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(sweep))
    os.replace(scratch, path)


def sweep_summaries(sweep: dict, reward_range, threshold: float):
    """pls_core.evaluate's per-target summaries (means, stds, DSRL-normalised scores at `threshold`)."""
    from pls_core.evaluate import summarise
    from pls_core.rollout import EpisodeResult

    results = [EpisodeResult(**e) for e in sweep["episodes"]]
    return summarise(results, [tuple(t) for t in sweep["targets"]], reward_range, threshold)


def best_safe(summaries, reward_range, cost_range):
    """The summary with the highest mean reward among those with mean cost <= b and a target inside
    reward_range x cost_range; None if there is none."""
    def inside(value, bounds):
        slack = 1e-9 * max(1.0, abs(bounds[1] - bounds[0]))
        return bounds[0] - slack <= value <= bounds[1] + slack

    safe = [s for s in summaries if s.normalised_cost <= 1.0 and inside(s.target_reward, reward_range)
            and inside(s.target_cost, cost_range)]
    return max(safe, key=lambda s: s.reward_mean) if safe else None
