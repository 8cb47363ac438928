"""Running an exported CDT: the one class the ROS policy node and the offline tools share.

PolicyRunner keeps, per env, the last K steps (state, action, R left, G left, timestep) left-padded in a
fixed-size buffer, and asks onnxruntime for all envs in one call. Target bookkeeping is in raw return
units, as in the paper: after each env step R <- R - r and G <- G - c. reward_scale and the cost transform
are applied inside the graph only, never here, so callers can forget they exist.

Call order per env: reset(targets) once, then act(obs) -> env.step -> record(reward, cost), repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

SUPPORTED_FORMAT = 1
SHIPPED_MODELS = Path(__file__).resolve().parent / "models"


def shipped_model_path(task_id: str) -> Path:
    """The policy shipped with pls for a task (pls_core/models/<task>/policy.onnx, see its manifest.json)."""
    path = SHIPPED_MODELS / task_id / "policy.onnx"
    if not path.is_file():
        available = sorted(p.parent.name for p in SHIPPED_MODELS.glob("*/policy.onnx"))
        raise ContractError(
            f"no shipped model for {task_id} (shipped: {available}); train and export one with "
            "`pls train` and `pls export`, then pass its path"
        )
    return path


class ContractError(ValueError):
    """An input or a model file does not fit the model's contract; the message names problem and fix."""


@dataclass(frozen=True)
class ModelContract:
    """What an exported policy expects and promises, read from the ONNX metadata_props (JSON values).

    reward_scale, cost_transform, obs_mean/obs_std and max_timestep describe what the graph does to its raw
    inputs; they are here for inspection and provenance, not for callers to re-apply.
    """

    task_id: str
    obs_dim: int
    act_dim: int
    act_low: tuple[float, ...]
    act_high: tuple[float, ...]
    context_len: int
    episode_len: int
    reward_scale: float
    cost_transform: str
    obs_mean: tuple
    obs_std: tuple
    dataset_sha256: str
    train_config: dict
    format_version: int
    max_timestep: int
    dataset_stats: dict

    @classmethod
    def from_onnx(cls, path) -> ModelContract:
        """Read the contract of an ONNX file; ContractError when metadata is missing or malformed."""
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ContractError(f"model file {path} does not exist; export one with `pls export`")
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ContractError(
                f"{path} is not a loadable ONNX model ({exc}); re-export it with `pls export`"
            ) from None
        return cls.from_metadata(session.get_modelmeta().custom_metadata_map, source=str(path))

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str = "model") -> ModelContract:
        missing = [f.name for f in fields(cls) if f.name not in metadata]
        if missing:
            raise ContractError(
                f"{source} lacks contract metadata {missing}; it was not written by `pls export` "
                "(or by an older version): re-export it from its checkpoint"
            )
        try:
            values = {f.name: json.loads(metadata[f.name]) for f in fields(cls)}
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"{source}: contract metadata is not valid JSON ({exc}); re-export the model"
            ) from None
        if values["format_version"] != SUPPORTED_FORMAT:
            raise ContractError(
                f"{source} has contract format {values['format_version']}, this runtime reads "
                f"{SUPPORTED_FORMAT}; re-export the model with this version of pls"
            )
        for name in ("act_low", "act_high", "obs_mean", "obs_std"):
            values[name] = tuple(float(v) for v in values[name])
        contract = cls(**values)
        contract._validate(source)
        return contract

    def _validate(self, source: str) -> None:
        sizes = {
            "act_low": self.act_dim,
            "act_high": self.act_dim,
            "obs_mean": self.obs_dim,
            "obs_std": self.obs_dim,
        }
        for name, size in sizes.items():
            if len(getattr(self, name)) != size:
                raise ContractError(
                    f"{source}: {name} has {len(getattr(self, name))} entries, expected {size}; "
                    "the file is inconsistent, re-export it"
                )
        if self.context_len < 1 or self.obs_dim < 1 or self.act_dim < 1:
            raise ContractError(f"{source}: non-positive dimensions in the contract; re-export the model")

    def check_observation(self, obs: np.ndarray) -> None:
        """Refuse observations of the wrong shape or with NaN/inf: a sensor fault must not become action."""
        obs = np.asarray(obs)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ContractError(
                f"observation shape {obs.shape} does not match the model ({self.task_id}) which "
                f"expects [{self.obs_dim}] or [num_envs, {self.obs_dim}]; check the env/topic wiring"
            )
        if not np.all(np.isfinite(obs)):
            bad = np.argwhere(~np.isfinite(obs)).tolist()
            raise ContractError(
                f"observation has NaN/inf at {bad}; fix the source of the observation, the policy "
                "will not act on it"
            )


class PolicyRunner:
    """Batched, stateful inference over `num_envs` independent episodes with one ORT call per step."""

    def __init__(self, model_path, num_envs: int = 1, intra_op_threads: int = 1):
        import onnxruntime as ort

        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.contract = ModelContract.from_onnx(model_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.num_envs = num_envs
        n, k, c = num_envs, self.contract.context_len, self.contract
        self._states = np.zeros((n, k, c.obs_dim), dtype=np.float32)
        self._actions = np.zeros((n, k, c.act_dim), dtype=np.float32)
        self._returns_to_go = np.zeros((n, k), dtype=np.float32)
        self._costs_to_go = np.zeros((n, k), dtype=np.float32)
        self._timesteps = np.zeros((n, k), dtype=np.int64)
        self._padding = np.ones((n, k), dtype=bool)
        self._targets = np.full((n, 2), np.nan)  # float64: long episodes subtract many small numbers
        self._steps = np.zeros(n, dtype=np.int64)
        self._awaiting_record = np.zeros(n, dtype=bool)

    @property
    def targets_to_go(self) -> np.ndarray:
        """[num_envs, 2]: reward and cost return still to collect (R, G), in raw return units."""
        return self._targets.copy()

    @property
    def steps(self) -> np.ndarray:
        return self._steps.copy()

    def reset(self, targets, env_ids=None) -> None:
        """Start new episodes in `env_ids` (all when None) with targets (R, G) or one row per env."""
        ids = self._ids(env_ids)
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape == (2,):
            targets = np.broadcast_to(targets, (len(ids), 2))
        if targets.shape != (len(ids), 2) or not np.all(np.isfinite(targets)):
            raise ContractError(
                f"targets must be a finite (R, G) pair or an array [{len(ids)}, 2], got "
                f"{targets.tolist() if targets.size < 20 else targets.shape}"
            )
        self._targets[ids] = targets
        self._steps[ids] = 0
        self._awaiting_record[ids] = False
        for buffer in (self._states, self._actions, self._returns_to_go, self._costs_to_go, self._timesteps):
            buffer[ids] = 0
        self._padding[ids] = True

    def act(self, obs) -> np.ndarray:
        """Append the observation to every env's context and return the clipped mean actions."""
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1 and self.num_envs == 1
        self.contract.check_observation(obs)
        obs = obs.reshape(1, -1) if single else obs
        if obs.shape[0] != self.num_envs:
            raise ContractError(
                f"observation shape {obs.shape}: {obs.shape[0]} rows for {self.num_envs} envs; "
                "pass one row per env"
            )
        if np.isnan(self._targets).any():
            raise ContractError("act() before reset(): call reset(targets) to set (R, G) for every env first")
        if self._awaiting_record.any():
            raise ContractError(
                f"act() twice without record() for envs {np.flatnonzero(self._awaiting_record)}; "
                "call record(rewards, costs) after each env step"
            )

        for buffer in (
            self._states,
            self._actions,
            self._returns_to_go,
            self._costs_to_go,
            self._timesteps,
            self._padding,
        ):
            buffer[:, :-1] = buffer[:, 1:].copy()
        self._states[:, -1] = obs
        self._actions[:, -1] = 0.0  # the current action is what we predict; its token is causally hidden
        self._returns_to_go[:, -1] = self._targets[:, 0]
        self._costs_to_go[:, -1] = self._targets[:, 1]
        self._timesteps[:, -1] = self._steps
        self._padding[:, -1] = False

        actions = self._session.run(
            ["action"],
            {
                "states": self._states,
                "actions": self._actions,
                "returns_to_go": self._returns_to_go,
                "costs_to_go": self._costs_to_go,
                "timesteps": self._timesteps,
                "padding_mask": self._padding,
            },
        )[0]
        self._actions[:, -1] = actions
        self._awaiting_record[:] = True
        return actions[0] if single else actions

    def record(self, rewards, costs, env_ids=None) -> None:
        """After env.step: R <- R - r, G <- G - c (raw units) and advance the step counter."""
        ids = self._ids(env_ids)
        rewards = np.broadcast_to(np.asarray(rewards, dtype=np.float64), (len(ids),))
        costs = np.broadcast_to(np.asarray(costs, dtype=np.float64), (len(ids),))
        if not (np.all(np.isfinite(rewards)) and np.all(np.isfinite(costs))):
            raise ContractError(
                "record() got NaN/inf reward or cost; the targets would be corrupted for the "
                "rest of the episode; check the env's step output"
            )
        if not self._awaiting_record[ids].all():
            raise ContractError("record() without a preceding act() for some envs; call act(obs) first")
        self._targets[ids, 0] -= rewards
        self._targets[ids, 1] -= costs
        self._steps[ids] += 1
        self._awaiting_record[ids] = False

    def _ids(self, env_ids) -> np.ndarray:
        if env_ids is None:
            return np.arange(self.num_envs)
        ids = np.atleast_1d(np.asarray(env_ids, dtype=np.int64))
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ContractError(f"env_ids {ids.tolist()} out of range for {self.num_envs} envs")
        return ids
