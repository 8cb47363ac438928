"""Rollout workers: run perturbed behaviour episodes in parallel processes.

Each worker steps a chunk of episodes in lockstep so that one batched policy call serves them all (a
single-observation SB3 call costs more than the physics step). Chunks are fixed by plan order, so results
are identical whatever the number of workers.
"""

from __future__ import annotations

from multiprocessing import get_context
from pathlib import Path

import numpy as np

from pls_core.collect.episodes import SEGMENT_STEPS, EpisodePlan
from pls_core.dataset import DSRL_KEYS

CHUNK_EPISODES = 16
DEFAULT_POLICY_PAIR = ("fast", "safe")  # (quicker, more cautious) policy names a rollout mixes
_worker: dict = {}  # per-process envs and policies, built once by _init_worker


def _init_worker(task_id: str, policy_folder: str, seed: int, episode_len: int | None,
                 policy_names: tuple[str, str]) -> None:
    import torch

    from pls_core.collect.behaviour import load_policies
    from pls_core.envs import make_env

    torch.set_num_threads(1)
    policies = load_policies(Path(policy_folder))
    fast_name, safe_name = policy_names
    _worker.update(envs=[make_env(task_id) for _ in range(CHUNK_EPISODES)], fast=policies[fast_name],
                   safe=policies[safe_name], seed=seed, episode_len=episode_len)


def run_episodes(envs: list, fast, safe, plans: list[EpisodePlan], seed: int,
                 episode_len: int | None = None) -> list[dict]:
    """The plans' episodes as DSRL arrays, one env each; an `episode_len` cut marks a timeout."""
    rngs = [plan.rng(seed) for plan in plans]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    obs = np.stack([env.reset(seed=plan.env_seed)[0] for env, plan in zip(envs, plans, strict=False)])
    steps = [{key: [] for key in DSRL_KEYS} for _ in plans]
    active = list(range(len(plans)))
    use_fast = np.zeros(len(plans), dtype=bool)
    t = 0
    while active:
        if t % SEGMENT_STEPS == 0:
            for i in active:
                use_fast[i] = rngs[i].uniform() < plans[i].fast_share
        fast_actions, _ = fast.policy.predict(obs[active], deterministic=True)
        safe_actions, _ = safe.policy.predict(obs[active], deterministic=True)
        still_active = []
        for row, i in enumerate(active):
            plan = plans[i]
            action = fast_actions[row] if use_fast[i] else safe_actions[row]
            noise = plan.action_noise * rngs[i].standard_normal(action.shape)
            action = np.clip(plan.throttle * action + noise, low, high)
            next_obs, reward, cost, terminated, truncated, _ = envs[i].step(action)
            truncated = truncated or (episode_len is not None and t + 1 >= episode_len)
            # obs[i] is a row view that is overwritten below: store a copy.
            values = (obs[i].copy(), next_obs, action, reward, cost, terminated, truncated and not terminated)
            for key, value in zip(DSRL_KEYS, values, strict=True):
                steps[i][key].append(value)
            obs[i] = next_obs
            if not (terminated or truncated):
                still_active.append(i)
        active = still_active
        t += 1
    return [{key: np.asarray(values, dtype=np.float32) for key, values in record.items()} for record in steps]


def _run_chunk(plans: list[EpisodePlan]) -> list[tuple[int, dict]]:
    w = _worker
    episodes = run_episodes(w["envs"], w["fast"], w["safe"], plans, w["seed"], w["episode_len"])
    return [(plan.index, arrays) for plan, arrays in zip(plans, episodes, strict=True)]


def rollout(
    task_id: str, policy_folder: Path, plans: list[EpisodePlan], seed: int, workers: int = 2,
    episode_len: int | None = None, progress: bool = True,
    policy_names: tuple[str, str] = DEFAULT_POLICY_PAIR,
) -> list[dict]:
    """All planned episodes, in plan order; `policy_names` are the (fast, safe) roles of the mix."""
    from tqdm import tqdm

    chunks = [plans[k:k + CHUNK_EPISODES] for k in range(0, len(plans), CHUNK_EPISODES)]
    results: dict[int, dict] = {}
    initargs = (task_id, str(policy_folder), seed, episode_len, tuple(policy_names))
    with get_context("spawn").Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
        bar = tqdm(total=len(plans), desc=f"rollouts {task_id}", unit="ep", disable=not progress)
        for chunk in pool.imap_unordered(_run_chunk, chunks):
            results.update(chunk)
            bar.update(len(chunk))
        bar.close()
    return [results[plan.index] for plan in plans]
