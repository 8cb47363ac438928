"""pls_core.lockstep: envs stepped together give each episode exactly what it gives alone."""

from __future__ import annotations

import numpy as np

from pls_core.envs import make_env
from pls_core.lockstep import run_lockstep

TASK = "SafetyHopperVelocity-v1"  # falls within a few dozen steps under these actions


def policy(obs):  # deterministic in the observation, so a batch and a single run can agree
    return np.sin(7.0 * obs[..., :3])


def alone(env, seed, max_steps):
    obs, _ = env.reset(seed=seed)
    totals, steps = [0.0, 0.0, 0], []
    while True:
        action = policy(obs)
        next_obs, reward, cost, terminated, truncated, _ = env.step(action)
        truncated = truncated or totals[2] + 1 >= max_steps
        totals = [totals[0] + reward, totals[1] + cost, totals[2] + 1]
        steps.append((reward, terminated, truncated))
        obs = next_obs
        if terminated or truncated:
            return totals, steps, bool(terminated)


def test_a_batch_of_episodes_equals_each_episode_alone():
    seeds, max_steps = [3, 4, 5, 8], 90  # some fall (28, 83, 88 steps), one is cut
    envs = [make_env(TASK) for _ in seeds]
    recorded = {i: [] for i in range(len(seeds))}
    after = []
    try:
        def on_step(i, obs, action, next_obs, reward, cost, terminated, truncated):
            recorded[i].append((reward, terminated, truncated))

        totals = run_lockstep(envs, seeds, lambda obs, active, t: policy(obs[active]), max_steps=max_steps,
                              after_step=lambda rewards, costs: after.append(rewards.copy()), on_step=on_step)
        reference = [alone(envs[0], seed, max_steps) for seed in seeds]
    finally:
        for env in envs:
            env.close()
    lengths = {t.length for t in totals}
    assert len(lengths) > 1, "the episodes should end at different steps for this test to mean anything"
    for i, (t, (ref_totals, ref_steps, ref_terminated)) in enumerate(zip(totals, reference, strict=True)):
        assert (t.reward_return, t.cost_return, t.length) == tuple(ref_totals)
        assert t.terminated == ref_terminated and recorded[i] == ref_steps
    assert len(after) == max(lengths)  # one call per step of the longest episode
    finished_first = int(np.argmin([t.length for t in totals]))
    assert all(row[finished_first] == 0.0 for row in after[totals[finished_first].length:])
