"""The per-step safe set of a velocity task, read from the task itself.

Safety-Gymnasium's velocity tasks charge cost 1 for a control step whose speed exceeds the env's
`_velocity_threshold`, the speed being the displacement over that step divided by the control period
`dt` (frame skip x model timestep): x of `qpos[0]` for HalfCheetah, Hopper, Walker2d and Swimmer, the
torso's planar (x, y) position for Ant. The safe set here is exactly "cost 0 on this step": speed at or
below the threshold, measured the same way. The backup target set (where the backup policy aims) is
stricter: instantaneous forward speed comfortably below the limit with the body upright (healthy), so
that arriving there leaves room before the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pls_core.tasks import get_task

VELOCITY_TASKS = ("SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyWalker2dVelocity-v1",
                  "SafetyAntVelocity-v1", "SafetySwimmerVelocity-v1")


class ShieldError(ValueError):
    """A shield input, task or file that cannot work; the message names the problem and the fix."""


@dataclass(frozen=True)
class SafeSet:
    """Per-step safe set (speed <= threshold over one control step) and the backup target set."""

    task_id: str
    threshold: float  # the env's own `_velocity_threshold` (m/s)
    dt: float  # control period: model timestep x frame skip
    frame_skip: int
    planar: bool  # Ant: speed of the torso's (x, y); else of qpos[0]
    target_fraction: float = 0.5  # target set: forward speed <= fraction x threshold ...
    healthy_z: tuple[float, float] | None = None  # ... and, for hoppers/walkers, upright as the env means it
    healthy_angle: tuple[float, float] | None = None

    @classmethod
    def for_env(cls, env, target_fraction: float = 0.5) -> SafeSet:
        """Read threshold, control period and health ranges from a made Safety-Gymnasium velocity env."""
        task_id = env.spec.id if env.spec is not None else ""
        if task_id not in VELOCITY_TASKS:
            raise ShieldError(f"the per-step shield covers the velocity tasks {', '.join(VELOCITY_TASKS)}, "
                              f"not {task_id!r}; run without --shield for it")
        base = env.unwrapped
        z = getattr(base, "_healthy_z_range", None)
        angle = getattr(base, "_healthy_angle_range", None)
        return cls(task_id, float(base._velocity_threshold), float(base.dt), int(base.frame_skip),
                   planar="Ant" in task_id, target_fraction=target_fraction,
                   healthy_z=None if z is None or "Ant" in task_id else tuple(map(float, z)),
                   healthy_angle=None if angle is None else tuple(map(float, angle)))

    @classmethod
    def for_task(cls, task_id: str, target_fraction: float = 0.5) -> SafeSet:
        from pls_core.envs import make_env

        get_task(task_id)
        env = make_env(task_id)
        try:
            return cls.for_env(env, target_fraction)
        finally:
            env.close()

    def position(self, data) -> np.ndarray:
        """What the task's cost differentiates: qpos[0], or the torso's (x, y) for Ant (body 1)."""
        return data.xpos[1, :2].copy() if self.planar else data.qpos[:1].copy()

    def step_speed(self, before: np.ndarray, after: np.ndarray) -> float:
        """Speed over one control step as the env computes it (signed forward for 1-D, norm for Ant)."""
        delta = (after - before) / self.dt
        return float(np.hypot(*delta)) if self.planar else float(delta[0])

    def safe(self, speed: float) -> bool:
        """Cost 0 on this step (the env charges `speed > threshold`)."""
        return speed <= self.threshold

    def healthy(self, data) -> bool:
        if self.healthy_z is not None:
            z = data.qpos[1]
            if not self.healthy_z[0] < z < self.healthy_z[1]:
                return False
        if self.healthy_angle is not None and not self.planar:
            angle = data.qpos[2]
            if not self.healthy_angle[0] < angle < self.healthy_angle[1]:
                return False
        return not self.planar or 0.2 <= data.qpos[2] <= 1.0  # Ant's own healthy torso height

    def in_target(self, data) -> bool:
        """Backup target set: forward speed (instantaneous) <= fraction x threshold, and healthy."""
        speed = float(np.hypot(*data.qvel[:2])) if self.planar else float(data.qvel[0])
        return speed <= self.target_fraction * self.threshold and self.healthy(data)
