"""Backup policies: the action the shield falls back to, and forward-integrates to certify candidates.

Both read the scratch MjData directly (joint positions and velocities), so the same code runs on the
simulator and on a state rebuilt on a robot, with numpy only:

- `BrakeBackup`: a hand-written PD brake that drives every actuated joint to the model's rest pose with
  its velocity to zero. It is the baseline the trained backup has to beat.
- `MLPBackup`: the trained backup (PS2-RL phase I, `pls_core.shield.train`), a small tanh MLP whose
  weights and input normalisation live in `pls_core/shields/<task>/backup.npz`; evaluated in numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pls_core.shield.safe_set import ShieldError

SHIPPED_SHIELDS = Path(__file__).resolve().parents[1] / "shields"  # package data, like models/


def features(data, planar: bool) -> np.ndarray:
    """Backup input: the configuration without the horizontal position (qpos[1:], Ant qpos[2:]) and the
    velocities clipped to +-10 as the tasks' own observations clip them."""
    skip = 2 if planar else 1
    return np.concatenate([data.qpos[skip:], np.clip(data.qvel, -10.0, 10.0)])


class BrakeBackup:
    """PD control of each actuated hinge to its rest angle: a = clip(-kp (q - q0) - kd qdot)."""

    name = "brake"

    def __init__(self, model, kp: float = 1.0, kd: float = 0.1):
        joints = model.actuator_trnid[:, 0]
        self.qadr = model.jnt_qposadr[joints]
        self.dadr = model.jnt_dofadr[joints]
        self.q0 = model.qpos0[self.qadr].copy()
        self.kp, self.kd = kp, kd
        self.low = model.actuator_ctrlrange[:, 0].copy()
        self.high = model.actuator_ctrlrange[:, 1].copy()

    def __call__(self, data) -> np.ndarray:
        a = -self.kp * (data.qpos[self.qadr] - self.q0) - self.kd * data.qvel[self.dadr]
        return np.clip(a, self.low, self.high)


class MLPBackup:
    """The trained backup policy in numpy: normalised features -> tanh MLP -> mean action, clipped."""

    name = "trained"

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], obs_mean, obs_var, low, high,
                 planar: bool, clip_obs: float = 10.0):
        self.weights = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in weights]
        self.obs_mean = np.asarray(obs_mean, np.float64)
        self.obs_scale = 1.0 / np.sqrt(np.asarray(obs_var, np.float64) + 1e-8)
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.planar, self.clip_obs = planar, clip_obs

    def action_of_features(self, x: np.ndarray) -> np.ndarray:
        h = np.clip((x - self.obs_mean) * self.obs_scale, -self.clip_obs, self.clip_obs)
        for w, b in self.weights[:-1]:
            h = np.tanh(w @ h + b)
        w, b = self.weights[-1]
        return np.clip(w @ h + b, self.low, self.high)

    def __call__(self, data) -> np.ndarray:
        return self.action_of_features(features(data, self.planar))

    def save(self, path: Path) -> None:
        arrays = {f"w{i}": w for i, (w, _) in enumerate(self.weights)}
        arrays.update({f"b{i}": b for i, (_, b) in enumerate(self.weights)})
        np.savez(path, obs_mean=self.obs_mean, obs_var=1.0 / self.obs_scale**2 - 1e-8, low=self.low,
                 high=self.high, planar=np.array(self.planar), clip_obs=np.array(self.clip_obs), **arrays)

    @classmethod
    def load(cls, path) -> MLPBackup:
        path = Path(path)
        if not path.is_file():
            raise ShieldError(f"no trained backup at {path}; train one with "
                              "`python -m pls_core.shield.train --task <task>` or use the brake backup")
        z = np.load(path)
        n = sum(1 for k in z.files if k.startswith("w"))
        weights = [(z[f"w{i}"], z[f"b{i}"]) for i in range(n)]
        return cls(weights, z["obs_mean"], z["obs_var"], z["low"], z["high"], bool(z["planar"]),
                   float(z["clip_obs"]))


def shield_dir(task_id: str) -> Path:
    return SHIPPED_SHIELDS / task_id


def load_backup(task_id: str, model, kind: str = "auto"):
    """`trained` (pls_core/shields/<task>/backup.npz), `brake`, or `auto`: the trained one if shipped."""
    path = shield_dir(task_id) / "backup.npz"
    if kind == "brake" or (kind == "auto" and not path.is_file()):
        return BrakeBackup(model)
    if kind in ("trained", "auto"):
        return MLPBackup.load(path)
    raise ShieldError(f"unknown backup kind {kind!r}; choose auto, trained or brake")


def shield_settings(task_id: str) -> dict:
    """The shield's recorded settings for a task (horizon, target fraction), if its manifest has them."""
    path = shield_dir(task_id) / "manifest.json"
    return json.loads(path.read_text()).get("shield", {}) if path.is_file() else {}
