"""Backup policies: the shipped trained backups match their manifests, run in numpy within the action box,
and the safe-arrival training env pays exactly on first safe arrival."""

import hashlib
import json

import numpy as np
import pytest

from pls_core.envs import make_env
from pls_core.shield.backup import BrakeBackup, MLPBackup, load_backup, shield_dir
from pls_core.shield.safe_set import SafeSet, ShieldError
from pls_core.shield.sim import ShieldSim, SimState, copy_model_of
from pls_core.shield.train import SafeArrivalEnv

TRAINED = ["SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyAntVelocity-v1"]


@pytest.mark.parametrize("task", TRAINED)
def test_shipped_backup_matches_its_manifest_and_acts_in_the_box(task, tmp_path):
    folder = shield_dir(task)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert hashlib.sha256((folder / "backup.npz").read_bytes()).hexdigest() == manifest["sha256"]
    assert manifest["seed"] == 0 and "pls_core.shield.train" in manifest["command"]
    env = make_env(task, seed=0)
    backup = load_backup(task, env.unwrapped.model, "trained")
    assert isinstance(backup, MLPBackup)
    for _ in range(5):
        action = backup(env.unwrapped.data)
        assert action.shape == env.action_space.shape and np.all(np.abs(action) <= 1.0)
        env.step(env.action_space.sample())
    backup.save(tmp_path / "copy.npz")  # the numpy form survives a save/load round trip exactly
    again = MLPBackup.load(tmp_path / "copy.npz")
    assert np.array_equal(again(env.unwrapped.data), backup(env.unwrapped.data))
    env.close()


def test_missing_backup_file_is_refused_with_the_command_that_makes_one(tmp_path):
    with pytest.raises(ShieldError, match="pls_core.shield.train"):
        MLPBackup.load(tmp_path / "none.npz")
    env = make_env("SafetyHalfCheetahVelocity-v1", seed=0)
    assert isinstance(load_backup("SafetyHalfCheetahVelocity-v1", env.unwrapped.model, "brake"), BrakeBackup)
    with pytest.raises(ShieldError, match="backup kind"):
        load_backup("SafetyHalfCheetahVelocity-v1", env.unwrapped.model, "magic")
    env.close()


def _arrival_env(env, state):
    safe_set = SafeSet.for_env(env)
    base = env.unwrapped
    return SafeArrivalEnv(copy_model_of(base.model), base.frame_skip, safe_set, [state], 5, seed=0), safe_set


def test_safe_arrival_pays_once_on_arrival_and_nothing_on_an_unsafe_step():
    env = make_env("SafetyHalfCheetahVelocity-v1", seed=0)
    rest = SimState.from_env(env)
    rest.qvel[:] = 0.0  # at rest: one gentle step arrives (slow, upright)
    arrival, safe_set = _arrival_env(env, rest)
    arrival.reset()
    _, reward, terminated, truncated, info = arrival.step(np.zeros(6))
    assert reward == 1.0 and terminated and info["arrived"]
    fast = SimState.from_env(env)
    fast.qvel[0] = 3 * safe_set.threshold  # every first step is over the limit
    arrival, _ = _arrival_env(env, fast)
    arrival.reset()
    _, reward, terminated, _, info = arrival.step(np.zeros(6))
    assert reward == 0.0 and terminated and not info["arrived"]
    env.close()


def test_brake_drives_joints_toward_rest():
    env = make_env("SafetyHopperVelocity-v1", seed=0)
    sim = ShieldSim.from_env(env, copy_model=True)
    brake = BrakeBackup(sim.model)
    sim.load(SimState.from_env(env))
    sim.data.qpos[brake.qadr] = brake.q0 + 0.3
    sim.data.qvel[brake.dadr] = 0.0
    assert np.all(brake(sim.data) < 0)  # pushes every bent joint back
    env.close()
