"""Episodes of an exported policy in the simulator: envs stepped in lockstep (pls_core.lockstep) through
PolicyRunner.

Episode i (targets in order, `episodes_per_target` each) is reset with seed `seed + i`, so results do not
depend on how many envs the runner batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pls_core.lockstep import run_lockstep


@dataclass(frozen=True)
class EpisodeResult:
    target_reward: float
    target_cost: float
    reward_return: float
    cost_return: float
    length: int
    seed: int


def run_episodes(runner, task_id: str, targets, episodes_per_target: int, seed: int,
                 on_batch=None) -> list[EpisodeResult]:
    """Run every target z = (R, G) for `episodes_per_target` episodes, `runner.num_envs` at a time;
    `on_batch(episodes)` after each batch (a progress bar)."""
    from pls_core.envs import make_env

    jobs = [(float(r), float(g)) for r, g in targets for _ in range(episodes_per_target)]
    envs = [make_env(task_id) for _ in range(min(runner.num_envs, len(jobs)))]
    results: list[EpisodeResult] = []
    try:
        for first in range(0, len(jobs), runner.num_envs):
            batch = jobs[first : first + runner.num_envs]
            results.extend(run_batch(runner, envs, batch, seed + first))
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        for env in envs:
            env.close()
    return results


def run_batch(runner, envs, jobs, seed: int) -> list[EpisodeResult]:
    """Episode i of `jobs` (one (R, G) each, at most runner.num_envs) on envs[i], reset with seed + i.

    The runner acts for all its slots every step; slots without a job act on zeros and are ignored."""
    n_slots, n_jobs = runner.num_envs, len(jobs)
    targets = np.zeros((n_slots, 2))
    targets[:n_jobs] = jobs
    runner.reset(targets)
    slots = np.zeros((n_slots, runner.contract.obs_dim), dtype=np.float32)

    def act(obs, active, t):
        slots[:n_jobs] = obs
        return runner.act(slots)[active]

    def after_step(rewards, costs):
        runner.record(np.pad(rewards, (0, n_slots - n_jobs)), np.pad(costs, (0, n_slots - n_jobs)))

    totals = run_lockstep(envs[:n_jobs], [seed + i for i in range(n_jobs)], act, after_step=after_step)
    return [EpisodeResult(jobs[i][0], jobs[i][1], t.reward_return, t.cost_return, t.length, seed + i)
            for i, t in enumerate(totals)]
