"""A scratch copy of the task's MuJoCo model and state: what the shield integrates forward.

On the simulator the state is copied from the env's MjData (qpos, qvel, act, time, and the solver's warm
start, so that a rollout from it repeats the env's own step). In the ROS graph (and on a robot) it is
rebuilt from the Observation alone (`ShieldSim.state_from_observation`) on the task's or the robot's MJCF
model (`ShieldSim.from_xml`): the velocity tasks observe every joint but the root's position in the
plane, which the dynamics do not depend on.
The model can be a perturbed copy of the env's (`perturbed`), to measure the shield with a wrong model.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass
class SimState:
    """Everything the next control steps depend on (MuJoCo's integration state)."""

    qpos: np.ndarray
    qvel: np.ndarray
    act: np.ndarray
    time: float
    qacc_warmstart: np.ndarray | None = None
    # Ant's cost differentiates the torso's xpos as MuJoCo left it after the last step (it lags qpos by
    # one substep); copying it keeps the first step's speed exactly the env's.
    xpos_torso: np.ndarray | None = None

    @classmethod
    def from_data(cls, data) -> SimState:
        return cls(data.qpos.copy(), data.qvel.copy(), data.act.copy(), float(data.time),
                   data.qacc_warmstart.copy(), data.xpos[1].copy())

    @classmethod
    def from_env(cls, env) -> SimState:
        return cls.from_data(env.unwrapped.data)


class ShieldSim:
    """One scratch MjData on a model; `load` a state, `step` a control step (frame_skip substeps)."""

    def __init__(self, model, frame_skip: int):
        self.model = model
        self.data = mujoco.MjData(model)
        self.frame_skip = int(frame_skip)
        self.nu = model.nu
        self.ctrl_low = model.actuator_ctrlrange[:, 0].copy()
        self.ctrl_high = model.actuator_ctrlrange[:, 1].copy()

    @classmethod
    def from_env(cls, env, copy_model: bool = False) -> ShieldSim:
        base = env.unwrapped
        model = copy_model_of(base.model) if copy_model else base.model
        return cls(model, base.frame_skip)

    @classmethod
    def from_xml(cls, path, frame_skip: int) -> ShieldSim:
        return cls(mujoco.MjModel.from_xml_path(str(path)), frame_skip)

    def observation_layout(self, obs_dim: int) -> int:
        """How many leading qpos entries (the root's x, or x and y) an observation of `obs_dim` leaves out,
        for observations that are qpos[skip:] followed by qvel (Gymnasium's MuJoCo locomotion tasks)."""
        nq, nv = self.model.nq, self.model.nv
        skip = nq + nv - int(obs_dim)
        if not 0 <= skip <= 2:
            raise ValueError(f"an observation of {obs_dim} values is not qpos[skip:] + qvel of this model "
                             f"(nq {nq}, nv {nv}); the shield needs the robot's own MJCF model")
        return skip

    def state_from_observation(self, obs: np.ndarray, skip: int) -> SimState:
        """The state an observation qpos[skip:] + qvel stands for, with the left-out root position at 0."""
        obs = np.asarray(obs, np.float64)
        nq, nv = self.model.nq, self.model.nv
        qpos = np.concatenate([np.zeros(skip), obs[:nq - skip]])
        return SimState(qpos, obs[nq - skip:nq - skip + nv].copy(), np.zeros(self.model.na), 0.0)

    def load(self, state: SimState) -> None:
        d = self.data
        d.qpos[:] = state.qpos
        d.qvel[:] = state.qvel
        if self.model.na:
            d.act[:] = state.act
        d.time = state.time
        if state.qacc_warmstart is not None:
            d.qacc_warmstart[:] = state.qacc_warmstart
        if state.xpos_torso is not None:
            d.xpos[1] = state.xpos_torso
        else:
            mujoco.mj_kinematics(self.model, d)

    def step(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)


def copy_model_of(model):
    """An independent MjModel with the same contents (MjModel supports copy.copy as a deep copy)."""
    import copy

    return copy.copy(model)


def perturbed(model, scale: float, seed: int):
    """A copy of `model` with every body mass and geom friction scaled by a factor in [1-scale, 1+scale].

    This is the model error a robot's shield lives with (its MJCF is never exact)."""
    rng = np.random.default_rng(seed)
    out = copy_model_of(model)
    out.body_mass[:] = model.body_mass * rng.uniform(1 - scale, 1 + scale, model.nbody)
    out.geom_friction[:, 0] = model.geom_friction[:, 0] * rng.uniform(1 - scale, 1 + scale, model.ngeom)
    return out
