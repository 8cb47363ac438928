"""Episodes of an exported policy in the simulator: a list of envs stepped in lockstep through PolicyRunner.

Episode i (targets in order, `episodes_per_target` each) is reset with seed `seed + i`, so results do not
depend on how many envs the runner batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpisodeResult:
    target_reward: float
    target_cost: float
    reward_return: float
    cost_return: float
    length: int
    seed: int


def run_episodes(runner, task_id: str, targets, episodes_per_target: int, seed: int) -> list[EpisodeResult]:
    """Run every target z = (R, G) for `episodes_per_target` episodes, `runner.num_envs` at a time."""
    from pls_core.envs import make_env

    jobs = [(float(r), float(g)) for r, g in targets for _ in range(episodes_per_target)]
    envs = [make_env(task_id) for _ in range(min(runner.num_envs, len(jobs)))]
    results: list[EpisodeResult] = []
    try:
        for first in range(0, len(jobs), runner.num_envs):
            results.extend(_run_batch(runner, envs, jobs[first : first + runner.num_envs], seed + first))
    finally:
        for env in envs:
            env.close()
    return results


def _run_batch(runner, envs, jobs, seed: int) -> list[EpisodeResult]:
    n_slots, n_jobs = runner.num_envs, len(jobs)
    obs = np.zeros((n_slots, runner.contract.obs_dim), dtype=np.float32)  # idle slots act on zeros, ignored
    for i, env in enumerate(envs[:n_jobs]):
        obs[i] = env.reset(seed=seed + i)[0]
    targets = np.zeros((n_slots, 2))
    targets[:n_jobs] = jobs
    runner.reset(targets)
    reward_return, cost_return = np.zeros(n_jobs), np.zeros(n_jobs)
    length = np.zeros(n_jobs, dtype=np.int64)
    running = np.ones(n_jobs, dtype=bool)
    while running.any():
        actions = runner.act(obs)
        rewards, costs = np.zeros(n_slots), np.zeros(n_slots)
        for i in np.flatnonzero(running):
            next_obs, rewards[i], costs[i], terminated, truncated, _ = envs[i].step(actions[i])
            reward_return[i] += rewards[i]
            cost_return[i] += costs[i]
            length[i] += 1
            obs[i] = next_obs
            running[i] = not (terminated or truncated)
        runner.record(rewards, costs)
    return [
        EpisodeResult(
            jobs[i][0], jobs[i][1], float(reward_return[i]), float(cost_return[i]), int(length[i]), seed + i
        )
        for i in range(n_jobs)
    ]
