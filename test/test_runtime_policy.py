"""PolicyRunner: the contract guard, target bookkeeping, batching, and agreement with the torch model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from test_cdt_support import tiny_artifacts

from pls_core.export import load_checkpoint_model
from pls_core.runtime import ContractError, ModelContract, PolicyRunner

OBS, ACT, K = 17, 6, 4


def observations(n_steps, n_envs, seed=0):
    return np.random.default_rng(seed).normal(size=(n_steps, n_envs, OBS)).astype(np.float32)


def test_refuses_observations_that_break_the_contract():
    runner = PolicyRunner(tiny_artifacts().onnx)
    runner.reset((100.0, 10.0))
    for bad in (np.zeros(OBS + 1), np.zeros((2, OBS)), np.zeros((1, 1, OBS))):
        with pytest.raises(ContractError, match="shape"):
            runner.act(bad)
    for value in (np.nan, np.inf, -np.inf):
        obs = np.zeros(OBS)
        obs[3] = value
        with pytest.raises(ContractError, match="NaN/inf"):
            runner.act(obs)
    assert runner.act(np.zeros(OBS)).shape == (ACT,)  # the refusals left the runner usable


def test_call_order_is_enforced():
    runner = PolicyRunner(tiny_artifacts().onnx)
    with pytest.raises(ContractError, match="reset"):
        runner.act(np.zeros(OBS))
    runner.reset((100.0, 10.0))
    runner.act(np.zeros(OBS))
    with pytest.raises(ContractError, match="record"):
        runner.act(np.zeros(OBS))
    with pytest.raises(ContractError, match="NaN/inf"):
        runner.record(np.nan, 0.0)


def test_targets_count_down_in_raw_return_units():
    runner = PolicyRunner(tiny_artifacts().onnx, num_envs=2)
    runner.reset([[2000.0, 20.0], [1500.0, 0.0]])
    for obs, reward, cost in zip(observations(3, 2), (1.5, 2.0, 2.5), (0.0, 1.0, 1.0), strict=True):
        runner.act(obs)
        runner.record([reward, 2 * reward], [cost, 0.0])
    # reward_scale (0.1) is applied inside the graph only: the bookkeeping subtracts r itself, not 0.1 r.
    np.testing.assert_allclose(runner.targets_to_go, [[2000.0 - 6.0, 18.0], [1500.0 - 12.0, 0.0]])
    np.testing.assert_array_equal(runner.steps, [3, 3])
    runner.reset((900.0, 5.0), env_ids=[1])
    np.testing.assert_allclose(runner.targets_to_go, [[1994.0, 18.0], [900.0, 5.0]])
    np.testing.assert_array_equal(runner.steps, [3, 0])


def last_k_left_padded(values, t: int, shape=()) -> np.ndarray:
    """Steps max(0, t-K+1)..t of a per-step history as a [1, K, *shape] window, zeros in front."""
    recent = np.asarray(values[max(0, t + 1 - K) : t + 1], dtype=np.float32)
    out = np.zeros((1, K, *shape), dtype=np.float32)
    out[0, K - len(recent) :] = recent.reshape(len(recent), *shape)
    return out


def test_actions_equal_the_torch_model_on_the_true_history():
    """The runner's context (left padding, R/G left, timesteps, past actions) is what the model trained on."""
    model, _, _ = load_checkpoint_model(tiny_artifacts().checkpoint)
    runner = PolicyRunner(tiny_artifacts().onnx)
    R, G = 300.0, 15.0
    runner.reset((R, G))
    states, actions, rtg, ctg = [], [], [], []
    rng = np.random.default_rng(1)
    for t, obs in enumerate(observations(7, 1)[:, 0]):
        action = runner.act(obs)
        states.append(obs)
        rtg.append(R)
        ctg.append(G)
        window = {
            "states": last_k_left_padded(states, t, (OBS,)),
            "actions": last_k_left_padded([*actions, np.zeros(ACT)], t, (ACT,)),
            "returns_to_go": last_k_left_padded(rtg, t),
            "costs_to_go": last_k_left_padded(ctg, t),
            "timesteps": last_k_left_padded(np.arange(t + 1), t).astype(np.int64),
            "padding_mask": np.arange(K)[None] < K - min(t + 1, K),
        }
        with torch.no_grad():
            expected = model.act(**{k: torch.from_numpy(v) for k, v in window.items()}).numpy()[0]
        np.testing.assert_allclose(action, expected, atol=1e-5)
        actions.append(action)
        reward, cost = rng.uniform(0, 3), float(rng.random() < 0.3)
        runner.record(reward, cost)
        R, G = R - reward, G - cost


def test_one_batched_runner_equals_separate_runners():
    obs = observations(6, 3, seed=2)
    targets = np.array([[2500.0, 0.0], [1800.0, 20.0], [900.0, 80.0]])
    batched = PolicyRunner(tiny_artifacts().onnx, num_envs=3)
    batched.reset(targets)
    singles = [PolicyRunner(tiny_artifacts().onnx) for _ in range(3)]
    for runner, target in zip(singles, targets, strict=True):
        runner.reset(target)
    for t in range(6):
        together = batched.act(obs[t])
        apart = np.stack([runner.act(obs[t, i]) for i, runner in enumerate(singles)])
        np.testing.assert_allclose(together, apart, atol=1e-6)
        rewards, costs = np.full(3, 1.0 + t), np.array([0.0, 1.0, 0.0])
        batched.record(rewards, costs)
        for i, runner in enumerate(singles):
            runner.record(rewards[i], costs[i])


def test_long_episodes_past_the_timestep_table_keep_acting():
    runner = PolicyRunner(tiny_artifacts().onnx)
    runner.reset((2000.0, 20.0))
    limit = runner.contract.max_timestep
    for _ in range(limit + 5):
        action = runner.act(np.zeros(OBS, dtype=np.float32))
        runner.record(1.0, 0.0)
    assert runner.steps[0] == limit + 5
    assert np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1.0)


def test_contract_errors_name_the_problem_and_the_fix(tmp_path):
    with pytest.raises(ContractError, match="does not exist.*pls export"):
        ModelContract.from_onnx(tmp_path / "missing.onnx")
    graph = onnx.load(str(tiny_artifacts().onnx))
    del graph.metadata_props[:]
    stripped = tmp_path / "stripped.onnx"
    onnx.save(graph, str(stripped))
    with pytest.raises(ContractError, match="lacks contract metadata.*re-export"):
        PolicyRunner(stripped)
    graph = onnx.load(str(tiny_artifacts().onnx))
    for prop in graph.metadata_props:
        if prop.key == "obs_mean":
            prop.value = "[1.0, 2.0]"
    broken = tmp_path / "broken.onnx"
    onnx.save(graph, str(broken))
    with pytest.raises(ContractError, match="obs_mean has 2 entries, expected 17"):
        ModelContract.from_onnx(broken)
