"""`pls collect` on the real HalfCheetah env with a tiny behaviour-training budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pls_core.cli import app
from pls_core.collect.behaviour import ensure_policies, policies_sha256, read_manifest
from pls_core.collect.budget_recipes import BUDGET_RECIPES
from pls_core.collect.episodes import plan_budget_episodes, plan_episodes
from pls_core.collect.grid_filter import GridSpec
from pls_core.collect.pipeline import DEFAULT_BEHAVIOUR_ROOT, collect_dataset
from pls_core.collect.recipes import get_recipe
from pls_core.collect.rollout import rollout
from pls_core.dataset import load_dataset

TASK = "SafetyHalfCheetahVelocity-v1"
TINY = dict(episodes=4, episode_len=30, grid=GridSpec(per_cell=100), timestep_scale=0.005, progress=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """Trains a tiny budget-conditioned behaviour policy, then collects with 2 workers."""
    root = tmp_path_factory.mktemp("behaviour")
    out = root / "first.hdf5"
    ds = collect_dataset(TASK, out, seed=7, behaviour_root=root, workers=2, **TINY)
    return root, out, ds


def test_collection_writes_a_valid_dsrl_file(first_run):
    root, out, ds = first_run
    loaded = load_dataset(out, obs_dim=17, act_dim=6)
    assert loaded.sha256 == ds.sha256
    _, _, lengths = loaded.episode_returns()
    np.testing.assert_array_equal(lengths, [30] * 4)
    for episode in loaded.episode_slices():  # each step starts where the previous one ended
        obs, next_obs = loaded.observations[episode], loaded.next_observations[episode]
        np.testing.assert_array_equal(obs[1:], next_obs[:-1])
        assert not np.array_equal(obs, next_obs)
    assert loaded.attrs["task_id"] == TASK and loaded.attrs["seed"] == 7
    assert loaded.attrs["behaviour_sha256"] == policies_sha256(root / TASK)
    manifest = read_manifest(root / TASK)
    assert set(manifest["policies"]) == {"budget"}  # one budget-conditioned PPO-Lagrangian policy
    entry = manifest["policies"]["budget"]
    assert entry["algo"] == "PPO-Lagrangian" and entry["budgets"] == list(BUDGET_RECIPES[TASK].policy.budgets)
    assert [row["budget"] for row in entry["evaluation"]][0] == 0.0
    # every episode of the file was planned with its own budget, drawn over the ladder's range
    budgets = [plan.budget for plan in plan_budget_episodes(4, 7, BUDGET_RECIPES[TASK].max_budget)]
    assert len(set(budgets)) == 4 and max(budgets) <= BUDGET_RECIPES[TASK].max_budget


def test_same_seed_reuses_policies_and_reproduces_the_file(first_run, tmp_path):
    root, _, ds = first_run
    policy_files = sorted((root / TASK).glob("budget.*"))
    stamps = [p.stat().st_mtime_ns for p in policy_files]
    out = tmp_path / "again.hdf5"
    result = CliRunner().invoke(app, [
        "collect", "--task", TASK, "--out", str(out), "--seed", "7", "--behaviour-dir", str(root),
        "--workers", "1", "--episodes", "4", "--episode-len", "30", "--per-cell", "100", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["sha256"] == ds.sha256
    assert [p.stat().st_mtime_ns for p in policy_files] == stamps  # not retrained
    command = load_dataset(out).attrs["generator_command"]
    assert command.startswith("pls collect") and "--seed 7" in command


def test_other_seed_gives_other_data(first_run, tmp_path):
    root, _, ds = first_run
    other = collect_dataset(TASK, tmp_path / "other.hdf5", seed=8, behaviour_root=root, workers=1, **TINY)
    assert other.sha256 != ds.sha256


@pytest.mark.parametrize("behaviour", ["sac", "sac-budget", "sac-pace"])
def test_sac_recipes_collect_from_the_committed_sac_policies(tmp_path, behaviour):
    """`behaviour="sac"` rolls out the fixed-penalty SAC pair (the recipe of the models shipped before the
    budget recipes) from the saved policies, without training anything; "sac-budget" switches the same pair
    by each episode's budget, "sac-pace" blends it."""
    import shutil

    folder = tmp_path / TASK
    folder.mkdir()
    for name in ("fast.zip", "safe.zip", "manifest.json"):
        shutil.copy2(DEFAULT_BEHAVIOUR_ROOT / TASK / name, folder / name)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    ds = collect_dataset(TASK, tmp_path / "sac.hdf5", seed=0, behaviour_root=tmp_path, workers=1,
                         behaviour=behaviour, **TINY)
    assert ds.attrs["behaviour"] == behaviour
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name in stamps} == stamps
    assert not (folder / "budget.zip").exists()
    _, _, lengths = ds.episode_returns()
    np.testing.assert_array_equal(lengths, [30] * 4)


def test_perturbation_overrides_reach_every_planned_episode(tmp_path):
    """--min-throttle 1 --max-action-noise 0: every episode at full strength without noise (the recipe
    throttles two thirds of them and perturbs half)."""
    import csv
    import shutil

    from pls_core.collect.pipeline import episode_table_path

    folder = tmp_path / TASK
    folder.mkdir()
    for name in ("fast.zip", "safe.zip", "manifest.json"):
        shutil.copy2(DEFAULT_BEHAVIOUR_ROOT / TASK / name, folder / name)
    out = tmp_path / "pace.hdf5"
    collect_dataset(TASK, out, seed=0, behaviour_root=tmp_path, workers=1, behaviour="sac-pace",
                    min_throttle=1.0, max_action_noise=0.0, **{**TINY, "episodes": 8})
    rows = list(csv.DictReader(episode_table_path(out).open()))
    assert len(rows) == 8
    assert {float(r["throttle"]) for r in rows} == {1.0} and {float(r["action_noise"]) for r in rows} == {0.0}


def test_perturb_steps_limit_throttle_and_noise_to_the_episode_start():
    """With perturb_steps = 5 a throttled, noisy episode acts as its behaviour policy alone from step 5 on:
    each later action is the policy's own at the recorded observation; the first five are not."""
    from pls_core.collect.behaviour import load_policies
    from pls_core.collect.episodes import EpisodePlan
    from pls_core.collect.rollout import MixActor, run_episodes
    from pls_core.envs import make_env

    policies = load_policies(DEFAULT_BEHAVIOUR_ROOT / TASK)
    actor = MixActor(policies["fast"], policies["safe"])
    plan = EpisodePlan(0, 3, fast_share=0.0, throttle=0.5, action_noise=0.3)  # the cautious policy only
    env = make_env(TASK)
    try:
        episode = run_episodes([env], actor, [plan], seed=0, episode_len=12, perturb_steps=5)[0]
    finally:
        env.close()
    own, _ = policies["safe"].policy.predict(episode["observations"], deterministic=True)
    close = [np.allclose(a, b, atol=1e-6) for a, b in zip(episode["actions"], own, strict=True)]
    assert close == [False] * 5 + [True] * 7


def test_throttle_steps_slow_the_start_only_and_label_the_unthrottled_actions():
    """throttle_steps = 5: a throttled episode without noise acts as its policy alone from step 5 on; with
    noise throughout and intended labels, every recorded action is the policy's own, unthrottled one."""
    from pls_core.collect.behaviour import load_policies
    from pls_core.collect.episodes import EpisodePlan
    from pls_core.collect.rollout import MixActor, run_episodes
    from pls_core.envs import make_env

    policies = load_policies(DEFAULT_BEHAVIOUR_ROOT / TASK)
    episodes = []
    for noise, label_intended in ((0.0, False), (0.3, True)):
        plan = EpisodePlan(0, 3, fast_share=0.0, throttle=0.5, action_noise=noise)  # the cautious policy
        env = make_env(TASK)
        try:
            episodes.append(run_episodes([env], MixActor(policies["fast"], policies["safe"]), [plan], seed=0,
                                         episode_len=12, throttle_steps=5, label_intended=label_intended)[0])
        finally:
            env.close()
    for episode in episodes:
        episode["own"], _ = policies["safe"].policy.predict(episode["observations"], deterministic=True)
    executed, intended = episodes
    close = [np.allclose(a, b, atol=1e-6) for a, b in zip(executed["actions"], executed["own"], strict=True)]
    assert close == [False] * 5 + [True] * 7
    np.testing.assert_allclose(intended["actions"], np.clip(intended["own"], -1, 1), atol=1e-5)
    with pytest.raises(ValueError, match="exclude each other"):
        run_episodes([], None, [plan], seed=0, perturb_steps=5, throttle_steps=5)


def test_intended_action_labels_keep_the_noisy_states_and_record_the_clean_actions():
    """label_intended (DART): the same noisy episode, step for step, but each recorded action is the
    behaviour's own at that observation rather than the noised one the env executed."""
    from pls_core.collect.behaviour import load_policies
    from pls_core.collect.episodes import EpisodePlan
    from pls_core.collect.rollout import MixActor, run_episodes
    from pls_core.envs import make_env

    policies = load_policies(DEFAULT_BEHAVIOUR_ROOT / TASK)
    plan = EpisodePlan(0, 3, fast_share=0.0, throttle=1.0, action_noise=0.3)  # the cautious policy only
    episodes = []
    for label_intended in (False, True):
        env = make_env(TASK)
        try:
            episodes.append(run_episodes([env], MixActor(policies["fast"], policies["safe"]), [plan], seed=0,
                                         episode_len=12, label_intended=label_intended)[0])
        finally:
            env.close()
    executed, intended = episodes
    np.testing.assert_array_equal(executed["observations"], intended["observations"])
    own, _ = policies["safe"].policy.predict(intended["observations"], deterministic=True)
    np.testing.assert_allclose(intended["actions"], own, atol=1e-5)
    assert not np.allclose(executed["actions"], own, atol=1e-2)


def test_spend_actor_switches_to_the_cautious_policy_once_the_budget_is_spent():
    from pls_core.collect.behaviour import load_policies
    from pls_core.collect.episodes import EpisodePlan
    from pls_core.collect.rollout import SpendActor

    policies = load_policies(DEFAULT_BEHAVIOUR_ROOT / TASK)
    actor = SpendActor(policies["fast"], policies["safe"])
    plans = [EpisodePlan(0, 1, 0.0, 1.0, 0.0, budget=2.0), EpisodePlan(1, 2, 0.0, 1.0, 0.0, budget=0.0)]
    obs = np.random.default_rng(0).standard_normal((2, 17)).astype(np.float32)
    fast = policies["fast"].policy.predict(obs, deterministic=True)[0]
    safe = policies["safe"].policy.predict(obs, deterministic=True)[0]
    assert not np.allclose(fast, safe)
    chosen = []
    for t in range(4):
        actions = actor.act(obs, plans, None, t)
        assert np.array_equal(actions[1], safe[1])  # a zero budget never goes fast
        chosen.append("fast" if np.array_equal(actions[0], fast[0]) else "safe")
        actor.record_cost(0, 1.0)
        actor.record_cost(1, 0.0)
    assert chosen == ["fast", "fast", "safe", "safe"]  # cost 1 per step, budget 2
    actor.act(obs, plans, None, 0)  # a new episode starts with nothing spent
    assert actor.spent == {0: 0.0, 1: 0.0}


def test_pace_actor_blends_toward_the_quicker_policy_as_the_episode_lags_its_budget():
    from pls_core.collect.behaviour import load_policies
    from pls_core.collect.episodes import EpisodePlan
    from pls_core.collect.rollout import PaceActor

    policies = load_policies(DEFAULT_BEHAVIOUR_ROOT / TASK)
    actor = PaceActor(policies["fast"], policies["safe"], episode_len=100)
    plans = [EpisodePlan(0, 1, 0.0, 1.0, 0.0, budget=100.0), EpisodePlan(1, 2, 0.0, 1.0, 0.0, budget=0.0)]
    obs = np.random.default_rng(0).standard_normal((2, 17)).astype(np.float32)
    fast = policies["fast"].policy.predict(obs, deterministic=True)[0]
    safe = policies["safe"].policy.predict(obs, deterministic=True)[0]
    weights = []
    for t in range(3):
        actions = actor.act(obs, plans, None, t)
        np.testing.assert_allclose(actions[1], safe[1], atol=1e-6)  # a zero budget is the cautious policy
        # actions[0] = w * fast + (1 - w) * safe: read w back along the segment between the two
        w = np.dot(actions[0] - safe[0], fast[0] - safe[0]) / np.dot(fast[0] - safe[0], fast[0] - safe[0])
        np.testing.assert_allclose(actions[0], w * fast[0] + (1 - w) * safe[0], atol=1e-5)
        weights.append(round(float(w), 4))
        actor.record_cost(0, [0.0, 0.0, 5.0][t])
    # pace = 100 * (t + 25) / 100: w = 0.2 * (pace - spent), clipped to [0, 1]
    assert weights == [1.0, 1.0, 1.0]
    actor.record_cost(0, 30.0)  # 35 spent by step 3, where the pace allows 28: cautious again
    np.testing.assert_allclose(actor.act(obs, plans, None, 3)[0], safe[0], atol=1e-6)
    assert actor.fast_weight(plans, None, 3).tolist() == [0.0, 0.0]
    actor.spent[0] = 27.0
    np.testing.assert_allclose(actor.fast_weight(plans, None, 3), [0.2, 0.0])
    actor.act(obs, plans, None, 0)  # a new episode starts with nothing spent
    assert actor.spent == {0: 0.0, 1: 0.0}


def test_safe_policy_fine_tuned_from_fast(tmp_path):
    """Hopper's recipe trains "safe" from "fast" (both in one process, in order)."""
    recipe = get_recipe("SafetyHopperVelocity-v1")
    folder = ensure_policies(recipe, tmp_path, seed=0, workers=2, progress=False, timestep_scale=0.005)
    policies = read_manifest(folder)["policies"]
    assert policies["safe"]["start_from"] == "fast" and policies["fast"]["start_from"] is None
    assert policies["safe"]["timesteps"] == int(recipe.safe.timesteps * 0.005)
    assert (folder / "fast.zip").stat().st_mtime_ns < (folder / "safe.zip").stat().st_mtime_ns


def test_curriculum_extras_are_trained_in_order_and_the_rollouts_mix_the_named_pair(tmp_path):
    """Walker2d's recipe goes on past "safe" (steady, then quick) and rolls out with (quick, steady)."""
    task = "SafetyWalker2dVelocity-v1"
    recipe = get_recipe(task)
    assert recipe.rollout_policies == ("quick", "steady")
    folder = ensure_policies(recipe, tmp_path, seed=0, workers=2, progress=False, timestep_scale=0.002)
    policies = read_manifest(folder)["policies"]
    assert [policies[name]["start_from"] for name in ("fast", "safe", "steady", "quick")] == [
        None, "fast", "safe", "steady"]
    assert [policies[name]["seed"] for name in ("fast", "safe", "steady", "quick")] == [0, 1, 2, 3]
    plans = plan_episodes(2, 0, recipe.max_fast_share, recipe.max_action_noise)
    named = rollout(task, folder, plans, 0, workers=1, episode_len=20, progress=False,
                    policy_names=recipe.rollout_policies)
    default = rollout(task, folder, plans, 0, workers=1, episode_len=20, progress=False)
    assert not np.array_equal(named[0]["actions"], default[0]["actions"])


def test_collected_file_feeds_train_export_evaluate(first_run, tmp_path):
    """The whole offline chain on one small budget: collect -> train (tiny) -> export -> evaluate."""
    _, dataset, _ = first_run
    runner = CliRunner()
    steps = [
        ["train", "--dataset", str(dataset), "--out", str(tmp_path / "run"), "--preset", "tiny",
         "--steps", "6", "--no-progress", "--set", "eval_every=6", "--set", "eval_episodes=1"],
        ["export", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
         "--out", str(tmp_path / "p.onnx")],
        ["evaluate", "--model", str(tmp_path / "p.onnx"), "--dataset", str(dataset), "--rewards", "50",
         "--costs", "0,20", "--episodes", "1", "--threshold", "20", "--out", str(tmp_path / "eval")],
    ]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"pls {args[0]}: {result.output}\n{result.exception!r}"
    from pls_core.runtime import ModelContract

    contract = ModelContract.from_onnx(tmp_path / "p.onnx")
    assert contract.dataset_sha256 == load_dataset(dataset).sha256
    assert any((tmp_path / "eval").iterdir())


def test_interrupted_training_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    """A stop mid-training (hours for Ant) loses at most one chunk: the next call goes on from there."""
    from dataclasses import replace

    from pls_core.collect import behaviour
    from pls_core.collect.recipes import BehaviourRecipe
    from pls_core.collect.training_log import TrainingLog

    recipe = BehaviourRecipe("tiny", 0.0, 200, net_arch=(16, 16), learning_starts=50)
    real_step = TrainingLog._on_step
    stepped = []

    def crash_after_first_chunk(self):
        stepped.append(self.num_timesteps)
        if self.num_timesteps > 150:
            raise KeyboardInterrupt("session stopped")
        return real_step(self)

    monkeypatch.setattr(TrainingLog, "_on_step", crash_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        behaviour.train_policy(TASK, recipe, 0, tmp_path, progress=False, checkpoint_every=100)
    partial = behaviour.partial_dir(tmp_path, "tiny")
    assert json.loads((partial / "progress.json").read_text())["steps"] == 100
    assert not (tmp_path / "tiny.zip").exists()
    with pytest.raises(ValueError, match=r"another recipe or seed.*--retrain"):  # not silently mixed
        behaviour.train_policy(TASK, replace(recipe, net_arch=(32, 32)), 0, tmp_path, progress=False)

    def count(self):
        stepped.append(self.num_timesteps)
        return real_step(self)

    monkeypatch.setattr(TrainingLog, "_on_step", count)
    stepped.clear()
    entry = behaviour.train_policy(TASK, recipe, 0, tmp_path, progress=False, checkpoint_every=100)
    assert stepped == list(range(101, 201))  # only the second chunk ran, counting on from the first
    assert entry["timesteps"] == 200 and (tmp_path / "tiny.zip").exists() and not partial.exists()


def _collect(tmp_path, task: str):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "pls_core.cli", "collect", "--task", task, "--out", str(tmp_path / "x.hdf5"),
         "--behaviour-dir", str(tmp_path / "behaviour"), "--train-scale", "0.5", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigterm_stops_the_sac_training_too(tmp_path):
    """`timeout` or a scheduler killing `pls collect` must not leave a training running as an orphan.
    CarCircle's fast -> safe chain is one chain, so it trains in the `pls collect` process itself (two
    chains would be Ray tasks, whose session ends with the process: test_collect_ray)."""
    import signal
    import time

    cli = _collect(tmp_path, "SafetyCarCircle1-v0")
    try:
        time.sleep(15)  # imports, then into training (30k steps: minutes, far from done)
        assert cli.poll() is None, "pls collect ended before it was stopped"
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=60) == 128 + signal.SIGTERM
    finally:  # never leave a training behind, whatever failed above
        cli.kill()
    assert not (tmp_path / "behaviour" / "SafetyCarCircle1-v0" / "fast.zip").exists()


def test_sigterm_stops_the_budget_policy_training(tmp_path):
    """The velocity tasks' PPO-Lagrangian trains in the `pls collect` process itself: SIGTERM ends it."""
    import signal
    import time

    cli = _collect(tmp_path, TASK)
    try:
        time.sleep(15)  # imports, then into training (1M steps at this scale: minutes, far from done)
        assert cli.poll() is None, "pls collect ended before it was stopped"
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=60) == 128 + signal.SIGTERM
        assert not (tmp_path / "x.hdf5").exists()
    finally:
        cli.kill()
