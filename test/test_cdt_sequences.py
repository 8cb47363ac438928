"""Training windows and CDT's data tricks: returns-to-go, left padding, cost weighting, Pareto relabelling."""

from __future__ import annotations

import numpy as np
import pytest

from pls_core.cdt.presets import preset
from pls_core.cdt.relabel import pareto_indices, pareto_relabel
from pls_core.cdt.sequences import SequenceSampler
from pls_core.dataset import OfflineDataset
from pls_core.tasks import get_task

TASK = get_task("SafetyHalfCheetahVelocity-v1")


def synthetic_dataset(lengths=(5, 7, 6), cost_per_step=(0.0, 1.0, 3.0)) -> OfflineDataset:
    """Episodes whose observation is (episode, step), reward 1 per step, a fixed cost per step."""
    obs = np.concatenate([np.stack([np.full(n, e), np.arange(n)], 1) for e, n in enumerate(lengths)])
    costs = np.concatenate([np.full(n, c) for n, c in zip(lengths, cost_per_step, strict=True)])
    ends = np.cumsum(lengths) - 1
    timeouts = np.zeros(len(obs), dtype=bool)
    timeouts[ends] = True
    return OfflineDataset(
        observations=obs,
        next_observations=obs,
        actions=obs[:, :1] * 0.1,
        rewards=np.ones(len(obs)),
        costs=costs,
        terminals=np.zeros(len(obs), dtype=bool),
        timeouts=timeouts,
        attrs={"task_id": TASK.task_id},
    )


def test_windows_are_left_padded_and_carry_raw_returns_to_go():
    config = preset("tiny").replace(context_len=4, augment_percent=0.0, cost_sample=False)
    sampler = SequenceSampler(synthetic_dataset(), config, TASK, rng=np.random.default_rng(0))
    batch = sampler.sample(256, np.random.default_rng(1))
    lengths = {0: 5, 1: 7, 2: 6}
    cost_per_step = {0: 0.0, 1: 1.0, 2: 3.0}
    for i in range(256):
        real = ~batch["padding_mask"][i]
        episode = int(batch["states"][i, -1, 0])
        steps = batch["states"][i, real, 1].astype(int)
        last = steps[-1]
        assert real.sum() == min(4, last + 1)  # padding only where the episode had not started
        assert not batch["padding_mask"][i, -1] and np.all(np.diff(real.astype(int)) >= 0)
        np.testing.assert_array_equal(batch["timesteps"][i, real], steps)
        np.testing.assert_allclose(batch["returns_to_go"][i, real], lengths[episode] - steps)
        np.testing.assert_allclose(
            batch["costs_to_go"][i, real], cost_per_step[episode] * (lengths[episode] - steps)
        )
        assert np.all(batch["cost_labels"][i, real] == (cost_per_step[episode] > 0))
        assert np.all(batch["states"][i, ~real] == 0) and np.all(batch["returns_to_go"][i, ~real] == 0)


def test_cost_weighting_favours_cheap_trajectories():
    dataset = synthetic_dataset(lengths=(10, 10, 10), cost_per_step=(0.0, 3.0, 9.0))  # costs 0, 30, 90
    config = preset("tiny").replace(augment_percent=0.0, cost_sample_offset=70.0, cost_sample_floor=1.0)
    probability = SequenceSampler(dataset, config, TASK, rng=np.random.default_rng(0)).entry_probability
    np.testing.assert_allclose(probability, np.array([70.0, 40.0, 1.0]) / 111.0)


def test_pareto_front_keeps_only_non_dominated_points():
    costs = np.array([0.0, 10.0, 10.0, 20.0, 30.0, 5.0])
    rewards = np.array([100.0, 300.0, 200.0, 250.0, 500.0, 90.0])
    assert sorted(pareto_indices(costs, rewards).tolist()) == [0, 1, 4]


def test_default_cost_weighting_never_draws_trajectories_above_the_offset():
    dataset = synthetic_dataset(lengths=(10, 10, 10), cost_per_step=(0.0, 3.0, 9.0))  # costs 0, 30, 90
    config = preset("tiny").replace(augment_percent=0.0)  # OSRL: weight max(0, 70 - cost)
    probability = SequenceSampler(dataset, config, TASK, rng=np.random.default_rng(0)).entry_probability
    np.testing.assert_allclose(probability, np.array([70.0, 40.0, 0.0]) / 110.0)


def test_cost_weighting_that_would_draw_nothing_is_refused_naming_the_fix():
    dataset = synthetic_dataset(lengths=(10, 10), cost_per_step=(8.0, 9.0))  # costs 80, 90: all above 70
    with pytest.raises(ValueError, match="cost_sample_offset"):
        SequenceSampler(dataset, preset("tiny").replace(augment_percent=0.0), TASK,
                        rng=np.random.default_rng(0))


def test_every_relabelled_target_is_kept_on_its_nearest_cheaper_trajectory():
    rng = np.random.default_rng(0)
    costs = rng.uniform(0, 100, size=300)
    rewards = 1000 + 10 * costs + rng.normal(0, 50, size=300)
    relabels = pareto_relabel(costs, rewards, 60, deg=1, max_reward=3000.0, max_rew_decrease=500.0, rng=rng)
    assert len(relabels) == 60  # none dropped (OSRL keeps every target)
    first_use = set()
    for r in relabels:
        assert costs[r.source] <= r.cost + 1e-9 and r.reward <= 3000.0
        cheaper = np.flatnonzero(costs <= r.cost)
        nearest = int(cheaper[np.argmin(np.hypot(costs[cheaper] - r.cost, rewards[cheaper] - r.reward))])
        if nearest not in first_use:  # the first target nearest to a trajectory goes to that trajectory
            assert r.source == nearest
        else:  # later ones to a neighbour: no costlier, at most max_rew_decrease poorer than it
            assert costs[r.source] <= costs[nearest] and rewards[r.source] >= rewards[nearest] - 500.0
        first_use.add(nearest)
    # Targets ask for more than typical data at that cost: above the mean trend on average.
    assert np.mean([r.reward - (1000 + 10 * r.cost) for r in relabels]) > 0


def test_relabelled_entries_shift_returns_to_the_target():
    dataset = synthetic_dataset(lengths=(8, 8, 8, 8), cost_per_step=(0.0, 1.0, 2.0, 3.0))
    config = preset("tiny").replace(augment_percent=1.0, cost_sample=False)
    sampler = SequenceSampler(dataset, config, TASK, rng=np.random.default_rng(0))
    assert sampler.num_relabelled > 0
    relabelled = np.arange(4, len(sampler.entry_episode))
    start_reward = (
        sampler.reward_returns[sampler.entry_episode[relabelled]] + sampler.entry_reward_shift[relabelled]
    )
    start_cost = (
        sampler.cost_returns[sampler.entry_episode[relabelled]] + sampler.entry_cost_shift[relabelled]
    )
    assert np.all(start_cost >= sampler.cost_returns[sampler.entry_episode[relabelled]])
    assert np.all(start_reward <= sampler.relabel_max_reward)
    assert sampler.relabel_max_reward == TASK.relabel_max_reward  # the data's best (8) is below the task's


def test_relabelling_ceiling_reaches_the_best_return_in_the_data():
    dataset = synthetic_dataset(lengths=(4000, 5, 6))  # 1 reward per step: best return 4000 > 3000
    config = preset("tiny").replace(augment_percent=1.0)
    sampler = SequenceSampler(dataset, config, TASK, rng=np.random.default_rng(0))
    assert TASK.relabel_max_reward < 4000 and sampler.relabel_max_reward == 4000


def test_cost_window_share_sends_that_share_of_a_costly_trajectory_s_windows_near_its_cost():
    # Episode 0 costs 1 at step 100 only, episode 1 never: with share 0.5, half of episode 0's windows end
    # within 10 steps of step 100 (plus the uniform half's 21 / 200), episode 1's stay uniform.
    n = 200
    dataset = synthetic_dataset(lengths=(n, n), cost_per_step=(0.0, 0.0))
    dataset.costs[100] = 1.0
    config = preset("tiny").replace(augment_percent=0.0, cost_sample=False, cost_window_share=0.5)
    batch = SequenceSampler(dataset, config, TASK, rng=np.random.default_rng(0)).sample(
        20_000, np.random.default_rng(1))
    episode, step = batch["states"][:, -1, 0], batch["states"][:, -1, 1]
    near = np.abs(step - 100) <= 10
    assert abs(near[episode == 0].mean() - (0.5 + 0.5 * 21 / n)) < 0.02
    assert abs(near[episode == 1].mean() - 21 / n) < 0.02
    assert step.min() == 0 and step.max() == n - 1  # every step can still end a window


def test_cost_window_share_outside_its_range_is_refused_naming_the_fix():
    from pls_core.cdt.trainer import _resolve_config

    with pytest.raises(ValueError, match="--set cost_window_share="):
        _resolve_config(None, "tiny", None, {"cost_window_share": 1.0})


def test_start_window_share_sends_that_share_of_every_trajectory_s_windows_to_its_first_steps():
    # Two cost-free episodes of 200 steps: with share 0.3, 0.3 of each one's windows end in its first
    # start_window_steps (here 40) steps, plus the uniform rest's 0.7 * 40 / 200; with a cost share beside
    # it, the costly episode's windows split three ways.
    head_steps = 40
    n = 200
    dataset = synthetic_dataset(lengths=(n, n), cost_per_step=(0.0, 0.0))
    dataset.costs[150] = 1.0
    config = preset("tiny").replace(augment_percent=0.0, cost_sample=False, start_window_share=0.3,
                                    cost_window_share=0.4, start_window_steps=head_steps)
    batch = SequenceSampler(dataset, config, TASK, rng=np.random.default_rng(0)).sample(
        20_000, np.random.default_rng(1))
    episode, step = batch["states"][:, -1, 0], batch["states"][:, -1, 1]
    head = step < head_steps
    assert abs(head[episode == 0].mean() - (0.3 + 0.3 * head_steps / n)) < 0.02
    assert abs(head[episode == 1].mean() - (0.3 + 0.7 * head_steps / n)) < 0.02
    near = np.abs(step - 150) <= 10
    assert abs(near[episode == 0].mean() - (0.4 + 0.3 * 21 / n)) < 0.02
    assert step.min() == 0 and step.max() == n - 1


def test_start_window_share_beyond_what_the_cost_share_leaves_is_refused_naming_the_fix():
    from pls_core.cdt.trainer import _resolve_config

    with pytest.raises(ValueError, match="--set start_window_share="):
        _resolve_config(None, "tiny", None, {"start_window_share": 0.5, "cost_window_share": 0.5})
    with pytest.raises(ValueError, match="--set start_window_share="):
        _resolve_config(None, "tiny", None, {"start_window_share": -0.1})


def test_start_window_steps_below_one_is_refused_naming_the_fix():
    from pls_core.cdt.trainer import _resolve_config

    with pytest.raises(ValueError, match="--set start_window_steps="):
        _resolve_config(None, "tiny", None, {"start_window_share": 0.2, "start_window_steps": 0})
