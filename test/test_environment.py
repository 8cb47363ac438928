"""The whole dependency set lives in one process, and Safety-Gymnasium runs on Python 3.11."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pls_core.envs import make_env


def test_all_libraries_in_one_process_step_tasks_with_cost():
    import gpytorch  # noqa: F401
    import mujoco
    import onnxruntime
    import rclpy  # noqa: F401
    import torch

    from pls_core.compat.safety_gymnasium import import_safety_gymnasium

    assert import_safety_gymnasium().__version__ == "1.0.0"
    assert mujoco.__version__ == "3.14.0" and torch.__version__.startswith("2.13.0")
    assert "CPUExecutionProvider" in onnxruntime.get_available_providers()
    for task_id in ("SafetyHalfCheetahVelocity-v1", "SafetyPointGoal1-v0"):
        env = make_env(task_id, seed=0)
        env.reset(seed=0)
        costs = []
        for _ in range(50):
            obs, reward, cost, terminated, truncated, info = env.step(env.action_space.sample())
            assert np.all(np.isfinite(obs)) and np.isfinite(reward)
            costs.append(float(cost))
            if terminated or truncated:
                env.reset()
        assert set(costs) <= {0.0, 1.0}, f"{task_id}: cost must be a 0/1 indicator per step, got {set(costs)}"
        env.close()


def test_velocity_cost_is_the_speed_indicator():
    """Drive HalfCheetah's cost through its definition: cost 1 exactly when x-velocity > 3.2096 (v1)."""
    env = make_env("SafetyHalfCheetahVelocity-v1", seed=1)
    env.reset(seed=1)
    for _ in range(200):
        _, _, cost, _, _, info = env.step(env.action_space.sample())
        assert cost == float(info["x_velocity"] > 3.2096)
    env.close()


VELOCITY = [f"Safety{robot}Velocity-v1"
            for robot in ("HalfCheetah", "Hopper", "Swimmer", "Walker2d", "Ant", "Humanoid")]
NAVIGATION = [f"Safety{robot}{task}-v0" for robot in ("Point", "Car") for task in ("Goal1", "Circle1")]


@pytest.mark.parametrize("task_id", VELOCITY + NAVIGATION)
def test_task_resets_and_steps(task_id):
    from pls_core.compat.safety_gymnasium import import_safety_gymnasium

    env = import_safety_gymnasium().make(task_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    for _ in range(10):
        obs, reward, cost, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.shape == env.observation_space.shape and np.isfinite(reward) and cost >= 0
        if terminated or truncated:
            break
    env.close()


def test_navigation_task_renders_offscreen(monkeypatch):
    """Without the mjv_initGeom shim this segfaults in mujoco 3 (the whole test process dies)."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    env = make_env("SafetyPointGoal1-v0", seed=0, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    env.close()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0


def test_swimmer_model_fix_is_written_once_and_never_in_place():
    """Ray workers create Swimmers at once: a rewrite in place let one read an empty model file."""
    from pls_core.compat.safety_gymnasium import fixed_model_file

    env = make_env("SafetySwimmerVelocity-v1", seed=0)
    loaded = Path(env.unwrapped.fullpath)
    env.close()
    assert loaded.name.startswith("swimmer-") and 'collision="predefined"' not in loaded.read_text()
    inode = loaded.stat().st_ino
    make_env("SafetySwimmerVelocity-v1", seed=1).close()
    assert loaded.stat().st_ino == inode, "a second Swimmer rewrote the shared model file"
    other = fixed_model_file("pls-test.xml", f"<mujoco model='{os.getpid()}'/>")
    assert other != loaded and other.read_text() == f"<mujoco model='{os.getpid()}'/>"
    assert not list(loaded.parent.glob(f"*.{os.getpid()}.tmp")), "a scratch file was left behind"
    other.unlink()
