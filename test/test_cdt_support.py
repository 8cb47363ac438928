"""Shared, session-cached artefacts for the CDT/export/runtime/evaluate tests (no tests in this module).

A tiny dataset from real SafetyHalfCheetahVelocity-v1 rollouts (random actions with a per-episode forward
bias, so costs vary), a `tiny`-preset training run on it and its ONNX export: built once per session.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASK = "SafetyHalfCheetahVelocity-v1"


@dataclass(frozen=True)
class TinyArtifacts:
    dataset: Path
    run_dir: Path
    checkpoint: Path
    onnx: Path


def rollout_dataset(path: Path, episodes: int = 6, seed: int = 0, task: str = TASK) -> Path:
    """Episodes of random actions with a per-episode bias (so costs vary) in the real env, saved in DSRL's
    layout through pls_core.dataset."""
    from pls_core.dataset import DSRL_KEYS, OfflineDataset, save_dataset
    from pls_core.envs import make_env

    rng = np.random.default_rng(seed)
    env = make_env(task)
    columns = {key: [] for key in DSRL_KEYS}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        bias = rng.uniform(-0.5, 0.5, size=env.action_space.shape)
        done = False
        while not done:
            action = np.clip(bias + rng.normal(0.0, 0.6, size=bias.shape), -1, 1).astype(np.float32)
            next_obs, reward, cost, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            values = (obs, next_obs, action, reward, cost, terminated, truncated and not terminated)
            for key, value in zip(DSRL_KEYS, values, strict=True):
                columns[key].append(value)
            obs = next_obs
    env.close()
    save_dataset(path, OfflineDataset(**{k: np.asarray(v) for k, v in columns.items()},
                                      attrs={"task_id": task}))
    return path


@functools.cache
def tiny_artifacts() -> TinyArtifacts:
    from pls_core.cdt.trainer import train
    from pls_core.export import export_checkpoint

    root = Path(tempfile.mkdtemp(prefix="pls-cdt-test-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    dataset = rollout_dataset(root / "tiny.hdf5")
    result = train(dataset, root / "run", preset_name="tiny", seed=0, progress=False)
    onnx_path = root / "policy.onnx"
    export_checkpoint(result.checkpoint, onnx_path)
    return TinyArtifacts(dataset, root / "run", result.checkpoint, onnx_path)
