"""The budget-conditioned PPO-Lagrangian's parts: multipliers, the budget env's shaping, its input."""

from __future__ import annotations

import numpy as np
import pytest

from pls_core.collect.lagrangian import (
    LagrangianRecipe,
    ScalarMultipliers,
    StatewiseMultiplier,
    _build_env,
    augment,
)

RECIPE = LagrangianRecipe(budgets=(0.0, 20.0, 100.0), timesteps=1000, n_envs=2)


def finished(rung: int, cost: float):
    return (rung, 100.0, cost, 1000)  # rung, reward, cost, length


def test_scalar_multipliers_rise_above_budget_fall_below_and_stay_in_bounds():
    mult = ScalarMultipliers(RECIPE, horizon=1000)
    for _ in range(10):
        mult.update({"finished": [finished(0, 50.0), finished(1, 200.0), finished(2, 10.0)]})
    assert mult.lam[0] > 0 and mult.lam[1] > 0 and mult.lam[2] == 0.0  # never below zero
    assert mult.lam[1] == pytest.approx(10 * RECIPE.multiplier_lr)  # steps are clipped to multiplier_lr
    high = mult.lam.copy()
    for _ in range(3):
        mult.update({"finished": [finished(1, 0.0)] * 50})  # the rung now costs far less than its budget
    assert mult.lam[1] < high[1]
    held = mult.lam.copy()
    mult.update({"finished": [finished(0, 500.0)]}, frozen=True)  # warm-up: estimates move, λ does not
    np.testing.assert_array_equal(mult.lam, held)
    assert mult.episode_cost[0] > 50.0
    restored = ScalarMultipliers(RECIPE, horizon=1000)
    restored.load(mult.state())
    np.testing.assert_array_equal(restored.lam, mult.lam)


def test_statewise_multiplier_rises_where_the_cost_to_go_exceeds_the_budget():
    obs_dim = 3
    mult = StatewiseMultiplier(RECIPE, horizon=100, obs_dim=obs_dim, seed=0)
    rng = np.random.default_rng(0)
    steps, envs = 64, 2
    obs = rng.normal(size=(steps, envs, obs_dim)).astype(np.float32)
    rungs = np.zeros((steps, envs), dtype=np.int64)  # budget 0: any cost violates
    batch = {"obs": obs, "rungs": rungs, "costs": np.ones((steps, envs)), "dones": np.zeros((steps, envs)),
             "last_obs": obs[-1], "finished": []}
    mult.update(batch, frozen=True)
    assert np.all(mult.penalty(obs[0], rungs[0]) == 0.0)  # no penalty before the warm-up ends
    before = None
    for _ in range(30):
        mult.update(batch)
        now = mult.penalty(obs[0], rungs[0])
        before = now if before is None else before
    assert np.all(now > before) and np.all(now >= 0)


def test_the_budget_env_shows_the_budget_charges_falls_and_redraws_budgets():
    from pls_core.collect.lagrangian import ScalarMultipliers

    env = _build_env("SafetyHopperVelocity-v1", RECIPE, seed=0)
    env.multiplier = ScalarMultipliers(RECIPE, horizon=1000)
    env.multiplier.lam[:] = 1.0
    obs = env.reset()
    assert obs.shape == (2, 12)  # Hopper's 11 + the budget
    np.testing.assert_allclose(obs[:, -1], np.asarray(RECIPE.budgets)[env.rungs] / RECIPE.budget_scale)
    rng = np.random.default_rng(0)
    charged = False
    for _ in range(400):  # random actions: Hopper falls within a few dozen steps
        rungs_before = env.rungs.copy()
        running = env.running.copy()
        env.step_async(rng.uniform(-1, 1, size=(2, 3)).astype(np.float32))
        obs, shaped, dones, infos = env.step_wait()
        for i in np.flatnonzero(dones):
            reward, cost = infos[i]["reward"], infos[i]["cost"]
            if not infos[i].get("TimeLimit.truncated", False):  # fell: charged for the remaining steps,
                remaining = 1000 - running[i][2] - 1  # discounted (RECIPE's default fall_charge)
                charge = (1.0 - 0.99**remaining) / (1.0 - 0.99)
                assert 0.0 < charge <= 100.0
                assert shaped[i] == pytest.approx((reward - (cost + charge)) / 2.0, rel=1e-5)
                charged = True
            np.testing.assert_allclose(infos[i]["terminal_observation"][-1],
                                       RECIPE.budgets[rungs_before[i]] / RECIPE.budget_scale)
        np.testing.assert_allclose(obs[:, -1], np.asarray(RECIPE.budgets)[env.rungs] / RECIPE.budget_scale)
    assert charged
    batch = env.take_batch()
    assert batch["obs"].shape == (400, 2, 12) and len(batch["finished"]) >= 2
    env.close()


def test_augment_appends_the_scaled_budget():
    out = augment(np.zeros((3, 4)), np.array([0.0, 50.0, 100.0]), 100.0)
    np.testing.assert_allclose(out[:, -1], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="multiplier must be one of"):
        LagrangianRecipe(budgets=(0.0,), timesteps=1, multiplier="pid")
    with pytest.raises(ValueError, match="fall_charge must be one of"):
        LagrangianRecipe(budgets=(0.0,), timesteps=1, fall_charge="none")
