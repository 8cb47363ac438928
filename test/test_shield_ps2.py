"""PS2 phase II: the linearised control-invariant layer, the layered env behind the exact shield, and SAC
trained through the layer (stable-baselines3, real MuJoCo)."""

import numpy as np
import pytest
import torch

from pls_core.envs import make_env
from pls_core.shield.layer import layer_fraction, layer_params, layer_torch, split_observation
from pls_core.shield.ps2 import CHECKPOINT, REPLAY, LayeredEnv, sb3_classes, train
from pls_core.shield.shield import Shield, ShieldConfig
from pls_core.shield.sim import SimState

CHEETAH = "SafetyHalfCheetahVelocity-v1"


def _moving(env, factor):
    env.unwrapped.data.qvel[0] = factor * env.unwrapped._velocity_threshold
    return SimState.from_env(env)


def test_layer_maps_into_the_linearised_set_and_its_gradient_checks_numerically():
    rng = np.random.default_rng(0)
    n = 6
    a = torch.tensor(rng.uniform(-1, 1, (64, n)), dtype=torch.float64, requires_grad=True)
    backup = torch.tensor(rng.uniform(-1, 1, (64, n)), dtype=torch.float64)
    margin = torch.tensor(rng.uniform(-0.2, 1.0, 64), dtype=torch.float64)
    gradient = torch.tensor(rng.normal(0, 1, (64, n)), dtype=torch.float64)
    out = layer_torch(a, backup, margin, gradient).detach().numpy()
    d = (a - backup).detach().numpy()
    t = layer_fraction(d, margin.numpy(), gradient.numpy())
    assert 10 < np.sum(t < 1) < 64  # the draw exercises both branches
    np.testing.assert_allclose(out, backup.numpy() + t[:, None] * d, atol=1e-12)  # numpy twin
    linear = margin.numpy() + np.sum((out - backup.numpy()) * gradient.numpy(), axis=1)
    assert np.all(linear[margin.numpy() > 0] >= -1e-9)  # inside the linearised admissible set
    np.testing.assert_allclose(out[margin.numpy() <= 0][t[margin.numpy() <= 0] < 1],
                               backup.numpy()[margin.numpy() <= 0][t[margin.numpy() <= 0] < 1])
    assert torch.autograd.gradcheck(lambda x: layer_torch(x, backup, margin, gradient), (a,))


def test_margin_is_nonnegative_exactly_when_the_check_admits():
    env = make_env(CHEETAH, seed=0)
    shield = Shield.from_env(env)
    rng = np.random.default_rng(1)
    verdicts = []
    for factor in (0.6, 0.9, 1.0):
        state = _moving(env, factor)
        for _ in range(8):
            action = rng.uniform(-1, 1, 6)
            admissible = shield.check(state, action).admissible
            assert (shield.check.margin(state, action) >= 0) == admissible
            verdicts.append(admissible)
    assert any(verdicts) and not all(verdicts)  # both kinds were tried
    state = _moving(env, 0.9)
    params = layer_params(shield, state)
    assert params.margin == shield.check.margin(state, params.backup)
    env.close()


def test_layered_env_executes_only_actions_a_fresh_rollout_certifies():
    env = LayeredEnv(make_env(CHEETAH, seed=0), Shield.from_env(make_env(CHEETAH)))
    referee = Shield.from_env(env.env, ShieldConfig())  # an independent check on its own model copy
    obs, _ = env.reset(seed=3)
    _moving(env.env, 0.95)
    rng = np.random.default_rng(2)
    intervened = 0
    for _ in range(40):
        state = SimState.from_env(env.env)
        _, backup, margin, gradient = split_observation(env._observe(env.env.unwrapped._get_obs()),
                                                        env.obs_dim, env.nu)
        expected = layer_params(env.shield, state)
        np.testing.assert_allclose(backup, expected.backup, rtol=1e-6)
        action = np.clip(rng.normal(0.6, 0.4, env.nu), -1, 1)
        obs, _, terminated, truncated, info = env.step(action)
        assert referee.check(state, info["executed_action"].astype(np.float64)).admissible
        assert info["cost"] == 0
        intervened += info["intervened"]
        if terminated or truncated:
            break
    assert intervened > 0  # the shield had work to do
    env.close()


def test_training_through_the_layer_resumes_and_acts_inside_the_layer(tmp_path):
    from stable_baselines3 import SAC

    policy, buffer = sb3_classes()
    small = {"learning_starts": 60, "checkpoint_every": 120, "net_arch": (16, 16), "buffer_size": 200}
    train(CHEETAH, tmp_path, steps=120, **small)
    train(CHEETAH, tmp_path, steps=200, **small)  # resumes from step 120
    model = SAC.load(tmp_path / CHECKPOINT, device="cpu",
                     custom_objects={"policy_class": policy, "replay_buffer_class": buffer})
    assert model.num_timesteps == 200
    model.load_replay_buffer(tmp_path / REPLAY)
    assert type(model.replay_buffer).__name__ == "ExecutedActionBuffer" and model.replay_buffer.size() == 200
    # Deterministic actions are the layer's output: inside the linearised set wherever the backup is.
    obs = model.replay_buffer.observations[:200, 0]
    actions, _ = model.predict(obs, deterministic=True)
    _, backup, margin, gradient = split_observation(obs.astype(np.float64), obs.shape[1] - 13, 6)
    linear = margin + np.sum((actions - backup) * gradient, axis=1)
    assert np.all(linear[margin > 0] >= -1e-4)


def test_a_task_input_actor_ignores_the_layer_parameters_and_runs_behind_the_shield_alone(tmp_path):
    """actor_input task: the actor reads the task observation only, so at run time the exact shield takes
    the layer's place and no layer parameters are computed; a layer-input actor cannot run that way."""
    from pls_core.shield.ps2 import PS2Policy, evaluate
    from pls_core.shield.safe_set import ShieldError

    small = {"learning_starts": 30, "net_arch": (16, 16), "buffer_size": 100}
    train(CHEETAH, tmp_path / "task", steps=60, **small)
    policy = PS2Policy(tmp_path / "task")
    assert (policy.actor_input, policy.runtime) == ("task", "shield")
    obs, _ = policy.env.reset(seed=0)
    assert obs.shape == (17,)  # no layer parameters at run time
    other = np.concatenate([obs, np.random.default_rng(0).normal(size=13).astype(np.float32)])
    with torch.no_grad():
        raw = policy.model.actor.raw_action(torch.as_tensor(obs[None]))
        assert torch.equal(raw, policy.model.actor.raw_action(torch.as_tensor(other[None])))
    policy.close()
    row = evaluate(tmp_path / "task", 1)[0]
    assert row["length"] == 1000 and row["cost_steps"] == 0
    assert evaluate(tmp_path / "task", 1, runtime="layer")[0]["cost_steps"] == 0  # as trained, also runs

    train(CHEETAH, tmp_path / "layer", steps=40, actor_input="layer", learning_starts=20, net_arch=(16, 16))
    assert PS2Policy(tmp_path / "layer").runtime == "layer"
    with pytest.raises(ShieldError, match="reads layer"):
        PS2Policy(tmp_path / "layer", runtime="shield")


def test_replay_buffer_keeps_the_executed_action():
    import gymnasium as gym

    _, buffer_class = sb3_classes()
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    buffer = buffer_class(10, space, space, device="cpu")
    executed = np.array([0.1, -0.2], np.float32)
    buffer.add(np.zeros((1, 2)), np.zeros((1, 2)), np.array([[0.9, 0.9]]), np.zeros(1), np.zeros(1),
               [{"executed_action": executed}])
    np.testing.assert_array_equal(buffer.actions[0, 0], executed)


@pytest.mark.parametrize("bad", [{"steps": 0}, {"checkpoint_every": 0}])
def test_cli_refuses_bad_counts(bad, tmp_path, capsys):
    from pls_core.shield.ps2 import main

    args = ["train", "--task", CHEETAH, "--out", str(tmp_path)]
    args += ["--steps", str(bad.get("steps", 10)), "--checkpoint-every", str(bad.get("checkpoint_every", 10))]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def test_experiment_runs_ps2_as_a_method_on_the_search_budget(tmp_path):
    """`pls experiment --methods ps2`: the trained policy's episodes on an optimizer run's seeds and
    budget, scored in the same table; a missing policy is refused with the command that trains it."""
    import hashlib
    import json

    from pls_core.experiment.harness import run_experiment
    from pls_core.experiment.loop import RunKey, RunRecord
    from pls_core.experiment.settings import ExperimentError, ExperimentSettings, SweepSettings
    from pls_core.shield.ps2 import ship

    train(CHEETAH, tmp_path / "trained", steps=40, learning_starts=20, net_arch=(16, 16))
    shipped = ship(tmp_path / "trained", episodes=1, dest_root=tmp_path / "ps2")
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256((shipped / CHECKPOINT).read_bytes()).hexdigest()
    assert manifest["evaluation"]["summary"]["cost_steps"]["mean"] == 0
    assert "--steps 40" in manifest["command"]
    settings = ExperimentSettings(tasks=(CHEETAH,), thresholds=(20.0,), methods=("ps2",), seeds=1,
                                  episodes_per_evaluation=1, iterations=1, sweep=SweepSettings(2, 2, 1),
                                  ps2_models_dir=tmp_path / "ps2")
    out = tmp_path / "out"
    paths = run_experiment(settings, out, progress=False)
    record = RunRecord.load(RunKey(CHEETAH, 20.0, "ps2", 0).path(out))
    assert record.final["target"] is None and record.iterations[0]["target"] is None
    assert len(record.episodes) == 1 and record.episodes[0]["seed"] == 0  # an optimizer run's seeds
    assert record.final["episodes"][0]["seed"] == 500_000
    assert record.episodes[0]["cost_steps"] == 0  # behind the exact shield
    assert "| 20 | ps2 |" in (out / "table.md").read_text() and paths
    before = record.wall_time_s
    run_experiment(settings, out, progress=False)  # stored: not run again
    assert RunRecord.load(RunKey(CHEETAH, 20.0, "ps2", 0).path(out)).wall_time_s == before
    with pytest.raises(ExperimentError, match="python -m pls_core.shield.ps2 train"):
        missing = ExperimentSettings(tasks=(CHEETAH,), methods=("ps2",), ps2_models_dir=tmp_path / "none")
        run_experiment(missing, tmp_path / "out2", progress=False)
