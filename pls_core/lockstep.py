"""The one episode loop: a batch of envs reset with their own seeds and stepped together until each ends.

Evaluation and experiments (a PolicyRunner acting for every env, `pls_core.rollout`), data collection
(behaviour policies with per-episode perturbations, recording every step, `pls_core.collect.rollout`) and
the behaviour policies' manifest evaluations all run their episodes through `run_lockstep`; they differ only
in who acts and what is kept of each step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# act(obs, active, t) -> actions of the active rows. obs holds every env's latest observation (finished
# episodes keep their last one), active the indices still running, t the step index.
Act = Callable[[np.ndarray, list[int], int], np.ndarray]
# on_step(i, obs, action, next_obs, reward, cost, terminated, truncated): one env step of episode i.
OnStep = Callable[[int, np.ndarray, np.ndarray, np.ndarray, float, float, bool, bool], None]


@dataclass(frozen=True)
class EpisodeTotals:
    reward_return: float
    cost_return: float
    length: int
    terminated: bool  # ended by the task (a fall), not by a time limit or max_steps


def run_lockstep(envs: Sequence, seeds: Sequence[int], act: Act, *, max_steps: int | None = None,
                 after_step: Callable[[np.ndarray, np.ndarray], None] | None = None,
                 on_step: OnStep | None = None) -> list[EpisodeTotals]:
    """One episode on each of `envs` (reset with `seeds[i]`), all stepped together.

    `after_step(rewards, costs)` gets each step's rewards and costs, 0 for rows already finished (a
    PolicyRunner records them for its return-to-go). `max_steps` cuts episodes at that length: the cut is
    a truncation. Returns each episode's totals, in env order.
    """
    n = len(envs)
    obs = np.stack([env.reset(seed=int(seed))[0] for env, seed in zip(envs, seeds, strict=True)])
    reward_return, cost_return = np.zeros(n), np.zeros(n)
    length, terminated_by_task = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    active = list(range(n))
    t = 0
    while active:
        actions = act(obs, active, t)
        rewards, costs = np.zeros(n), np.zeros(n)
        still_active = []
        for row, i in enumerate(active):
            next_obs, reward, cost, terminated, truncated, _ = envs[i].step(actions[row])
            truncated = bool(truncated) or (max_steps is not None and t + 1 >= max_steps)
            rewards[i], costs[i] = reward, cost
            reward_return[i] += reward
            cost_return[i] += cost
            length[i] += 1
            if on_step is not None:
                on_step(i, obs[i].copy(), actions[row], next_obs, reward, cost, bool(terminated), truncated)
            obs[i] = next_obs
            if terminated:
                terminated_by_task[i] = True
            elif not truncated:
                still_active.append(i)
        if after_step is not None:
            after_step(rewards, costs)
        active = still_active
        t += 1
    return [EpisodeTotals(float(reward_return[i]), float(cost_return[i]), int(length[i]),
                          bool(terminated_by_task[i])) for i in range(n)]
