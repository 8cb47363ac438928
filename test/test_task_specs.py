"""Task descriptions (pls_core/tasks.py): the shipped tasks are YAML files of the schema a user writes for a
robot; a description is checked key by key, and travels dataset -> checkpoint -> ONNX contract."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pls_core import tasks
from pls_core.tasks import (
    SHIPPED_TASKS,
    TASKS,
    TaskSpecError,
    load_task_spec,
    resolve_task,
    task_spec_from_text,
)

ROBOT_YAML = """\
task_id: TestArm-v0
description: a two-joint arm for tests
simulator: none
observation_size: 4
action_size: 2
action_low: [-2.0, -1.0]
action_high: 2.0
control_rate_hz: 50.0
episode_len: 30
can_terminate: false
reward: {meaning: "negative distance to the goal", unit: "m"}
cost: {meaning: "steps above the joint-speed limit", unit: "steps"}
max_cost: 30
thresholds: [5, 10]
seed_box: {reward: [-8, -6], cost: [0, 1]}
relabel: {deg: 1, max_reward: 0, max_rew_decrease: 3}
reward_kernel: {lengthscale: 5, variance: 4}
mujoco_model: arm.xml
"""


@pytest.fixture
def robot_yaml(tmp_path):
    path = tmp_path / "arm.yaml"
    path.write_text(ROBOT_YAML)
    yield path
    TASKS.pop("TestArm-v0", None)  # the registry is per process: leave it as the other tests expect


def test_a_robot_description_loads_with_every_key_typed(robot_yaml):
    spec = resolve_task(str(robot_yaml))
    assert spec.task_id == "TestArm-v0" and not spec.simulated
    assert spec.sizes == (4, 2) and spec.action_low == (-2.0, -1.0) and spec.action_high == (2.0, 2.0)
    assert spec.seed_reward_range == (-8.0, -6.0) and spec.seed_cost_range == (0.0, 1.0)
    assert spec.reward_kernel == (5.0, 4.0) and spec.thresholds == (5.0, 10.0)
    assert spec.mujoco_model == str(robot_yaml.parent.resolve() / "arm.xml")  # relative to the file
    assert tasks.get_task("TestArm-v0") is spec
    # The text a dataset and a contract carry reads back to the same spec.
    assert task_spec_from_text(spec.to_yaml_text(), "copy") == spec


def test_shipped_tasks_are_descriptions_of_the_same_schema():
    for task_id in SHIPPED_TASKS:
        path = tasks.SPEC_DIR / f"{task_id}.yaml"
        assert load_task_spec(path) == TASKS[task_id]
        assert task_spec_from_text(TASKS[task_id].to_yaml_text(), task_id) == TASKS[task_id]


@pytest.mark.parametrize("task_id", ["SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1",
                                     "SafetyWalker2dVelocity-v1", "SafetyAntVelocity-v1",
                                     "SafetySwimmerVelocity-v1"])
def test_shipped_descriptions_match_their_simulators(task_id):
    from pls_core.envs import make_env

    spec, env = TASKS[task_id], make_env(task_id)
    try:
        assert spec.sizes == (env.observation_space.shape[0], env.action_space.shape[0])
        assert np.allclose(spec.action_low, env.action_space.low) and np.allclose(spec.action_high,
                                                                                  env.action_space.high)
        assert spec.control_rate_hz == pytest.approx(1.0 / env.unwrapped.dt)
    finally:
        env.close()


@pytest.mark.parametrize("change, message", [
    ("speed: 3\n", "unknown key(s) ['speed']"),
    ("episode_len: 0\n", "episode_len = 0 must be an integer >= 1"),
    ("action_low: [-1, -1, -1]\n", "action_low = [-1, -1, -1] must be one number, or a list of action_size"),
    ("action_low: 3.0\n", "action_low must be below action_high"),
    ("simulator: gazebo\n", "simulator 'gazebo' is not one of"),
    ("seed_box: {reward: [-6, -8]}\n", "seed_box.reward = [-6, -8] must be [low, high] with low <= high"),
    ("max_cost: .nan\n", "max_cost = nan must be a finite number > 0"),
    ("task_id: my arm\n", "must be a non-empty name without spaces"),
])
def test_a_bad_description_names_the_key_and_what_it_must_be(tmp_path, change, message):
    key = change.split(":")[0]
    lines = [line for line in ROBOT_YAML.splitlines(keepends=True) if not line.startswith(key + ":")]
    path = tmp_path / "bad.yaml"
    path.write_text("".join(lines) + change)
    with pytest.raises(TaskSpecError) as info:
        load_task_spec(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_keys_missing_files_and_a_redefined_shipped_task_are_refused(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("task_id: Partial-v0\nobservation_size: 3\n")
    with pytest.raises(TaskSpecError, match=r"missing key\(s\) \['action_size', 'episode_len', 'max_cost'"):
        load_task_spec(path)
    with pytest.raises(TaskSpecError, match="does not exist"):
        resolve_task(str(tmp_path / "nowhere.yaml"))
    with pytest.raises(KeyError, match="or give the path of a task description YAML"):
        resolve_task("NoSuchTask-v0")
    hopper = (tasks.SPEC_DIR / "SafetyHopperVelocity-v1.yaml").read_text()
    hopper = hopper.replace("max_cost: 250.0", "max_cost: 9")
    path.write_text(hopper)
    with pytest.raises(TaskSpecError, match="is a task pls ships with other values; give your robot its own"):
        resolve_task(str(path))


def _arm_dataset(path: Path, spec, episodes: int = 8, seed: int = 0) -> Path:
    """Made-up arm episodes (random walk states, actions in the arm's bounds, costs varying by episode)."""
    from pls_core.dataset import OfflineDataset, save_dataset

    rng = np.random.default_rng(seed)
    n = spec.episode_len
    obs = rng.normal(size=(episodes * n, 4)).astype(np.float32)
    low, high = np.array(spec.action_low), np.array(spec.action_high)
    actions = rng.uniform(low, high, size=(episodes * n, 2)).astype(np.float32)
    speed = np.repeat(rng.uniform(0, 1, episodes), n)
    costs = (rng.uniform(size=episodes * n) < speed).astype(np.float32)
    timeouts = np.zeros(episodes * n, bool)
    timeouts[n - 1 :: n] = True
    rewards = -rng.uniform(0, 0.3, episodes * n).astype(np.float32)
    terminals = np.zeros(episodes * n, bool)
    save_dataset(path, OfflineDataset(obs, obs, actions, rewards, costs, terminals, timeouts,
                                      attrs={"task_id": spec.task_id, "task_spec": spec.to_yaml_text()}))
    return path


def test_a_robot_task_travels_from_dataset_to_model_contract(robot_yaml, tmp_path):
    """Trained and exported without the description file or a simulator, the model's contract carries the
    task; a fresh process that only reads the ONNX file knows the task, its sizes and its seed box."""
    from pls_core.cdt.trainer import train
    from pls_core.export import export_checkpoint

    spec = resolve_task(str(robot_yaml))
    dataset = _arm_dataset(tmp_path / "arm.hdf5", spec)
    TASKS.pop(spec.task_id)  # as in a new process: the dataset alone must make the task known
    result = train(dataset, tmp_path / "run", preset_name="tiny", seed=0, progress=False)
    onnx = tmp_path / "arm.onnx"
    export_checkpoint(result.checkpoint, onnx)
    probe = textwrap.dedent(f"""
        from pls_core.runtime import ModelContract
        from pls_core.tasks import get_task
        contract = ModelContract.from_onnx({str(onnx)!r})
        spec = get_task(contract.task_id)
        print(contract.task_id, contract.act_low, spec.seed_reward_range, spec.simulator)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["TestArm-v0", "(-2.0,", "-1.0)", "(-8.0,", "-6.0)", "none"]


def test_training_warns_when_the_reward_target_would_be_too_small_to_read():
    """The cpu preset's reward_scale suits returns in the thousands; a robot with returns of order 10 is
    told the scale that makes R readable."""
    from types import SimpleNamespace

    from pls_core.cdt.presets import preset
    from pls_core.cdt.trainer import conditioning_scale_warnings

    small = SimpleNamespace(reward_returns=np.array([-77.0, -3.0]))
    (warning,) = conditioning_scale_warnings(preset("cpu"), small)
    assert "enters the network as 0.077" in warning and "--set reward_scale=0.013" in warning
    assert conditioning_scale_warnings(preset("cpu").replace(reward_scale=0.013), small) == []
    cheetah = SimpleNamespace(reward_returns=np.array([3144.0]))
    assert conditioning_scale_warnings(preset("cpu"), cheetah) == []
