"""The per-step shield: the CDT proposes an action, the shield certifies it or moves it toward the backup.

Runtime API (numpy in, numpy out, no torch), what a control loop or a ROS node calls each tick:

    shield = Shield.from_env(env)                    # or Shield(sim, safe_set, backup, ...)
    action, info = shield.filter(SimState.from_env(env), proposed_action)

`ShieldedEnv` puts it between a policy and `env.step` and counts, per episode, the steps with cost > 0
and the steps where the shield changed the action.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np

from pls_core.shield.backup import load_backup, shield_settings
from pls_core.shield.check import AdmissibilityCheck
from pls_core.shield.safe_set import SafeSet, ShieldError
from pls_core.shield.safeguards import project, ray_mask
from pls_core.shield.sim import ShieldSim, SimState, perturbed

SAFEGUARDS = ("project", "ray")
DEFAULT_HORIZON = 20
DEFAULT_ITERATIONS = 4


@dataclass(frozen=True)
class ShieldConfig:
    backup: str = "auto"  # auto | trained | brake
    horizon: int | None = None  # control steps of backup rollout; None: the task's manifest, else 20
    safeguard: str = "project"
    iterations: int = DEFAULT_ITERATIONS  # bisection steps of the safeguard
    model_error: float = 0.0  # scale masses and frictions of the shield's model by up to +-this
    model_seed: int = 0
    margin: float = 0.0  # certify against (1 - margin) x the speed limit: room for the model's error
    # MuJoCo substeps per control step in the shield's model; None: the env's frame_skip (the env's own
    # integration, exact). Fewer scale the model's timestep so a control step spans the same time.
    substeps: int | None = None

    def __post_init__(self) -> None:
        if self.safeguard not in SAFEGUARDS:
            raise ShieldError(f"unknown safeguard {self.safeguard!r}; choose {' or '.join(SAFEGUARDS)}")
        if self.horizon is not None and self.horizon < 0:
            raise ShieldError(f"shield horizon must be >= 0 control steps, got {self.horizon}")
        if self.iterations < 0:
            raise ShieldError(f"shield iterations must be >= 0, got {self.iterations}")
        if not 0.0 <= self.margin < 1.0:
            raise ShieldError(f"margin must be in [0, 1), got {self.margin}")
        if not 0.0 <= self.model_error < 1.0:
            raise ShieldError(f"model_error must be in [0, 1), got {self.model_error}")
        whole = isinstance(self.substeps, numbers.Integral) and not isinstance(self.substeps, bool)
        if self.substeps is not None and (not whole or self.substeps < 1):
            raise ShieldError("shield substeps must be a whole number >= 1 of MuJoCo steps per control step "
                              f"(at most the env's frame_skip), or None for the env's own; "
                              f"got {self.substeps!r}")


class Shield:
    def __init__(self, check: AdmissibilityCheck, safeguard: str = "project",
                 iterations: int = DEFAULT_ITERATIONS):
        self.check, self.safeguard, self.iterations = check, safeguard, iterations
        self.low, self.high = check.sim.ctrl_low, check.sim.ctrl_high

    @classmethod
    def from_env(cls, env, config: ShieldConfig = ShieldConfig(), model=None) -> Shield:
        """The shield of `env`'s task, simulating a copy of `model` (default: the env's own model)."""
        safe_set = SafeSet.for_env(env)
        if config.margin:
            safe_set = replace(safe_set, threshold=safe_set.threshold * (1.0 - config.margin))
        model = env.unwrapped.model if model is None else model
        if config.model_error > 0:
            model = perturbed(model, config.model_error, config.model_seed)
        else:
            from pls_core.shield.sim import copy_model_of

            model = copy_model_of(model)
        frame_skip = env.unwrapped.frame_skip
        substeps = frame_skip if config.substeps is None else config.substeps
        if substeps > frame_skip:
            raise ShieldError(f"shield substeps {substeps} exceed the env's frame_skip {frame_skip}: a finer "
                              f"step than the env's own is no faster; use 1..{frame_skip} or None")
        if substeps != frame_skip:  # `model` is the shield's own copy: coarsen its step, same control period
            model.opt.timestep = model.opt.timestep * frame_skip / substeps
        sim = ShieldSim(model, substeps)
        backup = load_backup(safe_set.task_id, sim.model, config.backup)
        horizon = config.horizon
        if horizon is None:
            horizon = int(shield_settings(safe_set.task_id).get("horizon", DEFAULT_HORIZON))
        return cls(AdmissibilityCheck(sim, safe_set, backup, horizon), config.safeguard, config.iterations)

    @classmethod
    def for_task(cls, task_id: str, config: ShieldConfig = ShieldConfig(), model_path: str = "") -> Shield:
        """The shield of a velocity task without an env at hand (the policy node): its safe set, backup and
        control period from the task, its model from `model_path` (the robot's MJCF) or the task's own."""
        import mujoco

        from pls_core.envs import make_env

        env = make_env(task_id)
        try:
            model = None
            if model_path:
                model = mujoco.MjModel.from_xml_path(str(model_path))
                if model.nu != env.unwrapped.model.nu:
                    raise ShieldError(f"{model_path} has {model.nu} actuators, {task_id} "
                                      f"{env.unwrapped.model.nu}; give the MJCF model of the robot the "
                                      "policy drives")
            return cls.from_env(env, config, model)
        finally:
            env.close()

    def filter(self, state: SimState, action) -> tuple[np.ndarray, dict]:
        """The action to apply at `state`: `action` if admissible, else its safeguarded version."""
        action = np.clip(np.asarray(action, np.float64), self.low, self.high)
        if self.safeguard == "project":
            if self.check(state, action).admissible:  # the common case: no backup action needed
                return action, {"intervened": False, "fraction": 1.0, "checks": 1}
            backup = self.check.backup_action(state)
            result = project(self.check, state, action, backup, self.iterations, known_inadmissible=True)
        else:
            backup = self.check.backup_action(state)
            result = ray_mask(self.check, state, action, backup, self.low, self.high, self.iterations)
        return result.action, {"intervened": result.intervened, "fraction": result.fraction,
                               "checks": result.checks}


class ShieldedEnv(gym.Wrapper):
    """`env` with the shield (or none) before each step; counts cost > 0 steps and interventions."""

    def __init__(self, env, shield: Shield | None):
        super().__init__(env)
        self.shield = shield
        self.cost_steps = 0
        self.interventions = 0

    def reset(self, **kwargs):
        self.cost_steps = self.interventions = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        if self.shield is not None:
            action, info = self.shield.filter(SimState.from_env(self.env), action)
            self.interventions += int(info["intervened"])
        obs, reward, cost, terminated, truncated, info = self.env.step(action.astype(np.float32)
                                                                       if self.shield else action)
        self.cost_steps += int(cost > 0)
        return obs, reward, cost, terminated, truncated, info


def shield_fingerprint(task_id: str) -> dict:
    """What a shielded run depends on: the backup file's hash (or the brake) and the horizon."""
    from pls_core.shield.backup import shield_dir

    settings = shield_settings(task_id)
    path = shield_dir(task_id) / "backup.npz"
    if path.is_file():
        import hashlib

        backup = {"backup": "trained", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    else:
        backup = {"backup": "brake"}
    return {**backup, "horizon": int(settings.get("horizon", DEFAULT_HORIZON)),
            "safeguard": "project", "iterations": DEFAULT_ITERATIONS}
