"""Shared, session-cached artefacts for the experiment tests (no tests in this module).

A tiny CDT for SafetySwimmerVelocity-v1, trained on random-action episodes and exported. The Swimmer is
cheap to simulate and its velocity limit is low, so even a barely trained policy has episode costs in
the tens: "unsafe" counts at a threshold in that range are not trivially zero.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

TASK = "SafetySwimmerVelocity-v1"
KEYS = ("observations", "next_observations", "actions", "rewards", "costs", "terminals", "timeouts")


def random_action_dataset(path: Path, episodes: int = 6, seed: int = 0) -> Path:
    """Episodes of biased random actions in the real env, saved in DSRL's layout."""
    from pls_core.dataset import OfflineDataset, save_dataset
    from pls_core.envs import make_env

    rng = np.random.default_rng(seed)
    env = make_env(TASK)
    columns = {key: [] for key in KEYS}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        bias = rng.uniform(-0.5, 0.5, size=env.action_space.shape)
        done = False
        while not done:
            action = np.clip(bias + rng.normal(0.0, 0.6, size=bias.shape), -1, 1).astype(np.float32)
            next_obs, reward, cost, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            values = (obs, next_obs, action, reward, cost, terminated, truncated and not terminated)
            for key, value in zip(KEYS, values, strict=True):
                columns[key].append(value)
            obs = next_obs
    env.close()
    save_dataset(path, OfflineDataset(**{k: np.asarray(v) for k, v in columns.items()},
                                      attrs={"task_id": TASK}))
    return path


@functools.cache
def models_dir() -> Path:
    """A --models-dir holding <TASK>/policy.onnx, a `tiny`-preset CDT."""
    from pls_core.cdt.trainer import train
    from pls_core.export import export_checkpoint

    root = Path(tempfile.mkdtemp(prefix="pls-experiment-test-"))
    dataset = random_action_dataset(root / "swimmer.hdf5")
    # Random actions make costly episodes, how costly depends on the processor's physics: sample them
    # uniformly, so cost-weighted sampling (none above its offset) cannot depend on it.
    result = train(dataset, root / "run", preset_name="tiny", seed=0, progress=False,
                   overrides={"cost_sample": False})
    export_checkpoint(result.checkpoint, root / "models" / TASK / "policy.onnx")
    return root / "models"
