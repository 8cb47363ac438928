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
# No observation of the supported tasks comes near this magnitude (MuJoCo joint velocities are clipped far
# below it); a value beyond it is a unit or sensor fault, and acting on it would be acting on garbage.
MAX_OBSERVATION_MAGNITUDE = 1e6
SHIPPED_MODELS = Path(__file__).resolve().parent / "models"
_OPTIONAL_FIELDS = ("task_spec",)


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
    # The task description (YAML text, pls_core.tasks) of a robot's own task; optional, so models exported
    # before it existed still load. Reading the contract makes that task known to this process.
    task_spec: str | None = None

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
        missing = [f.name for f in fields(cls) if f.name not in metadata and f.name not in _OPTIONAL_FIELDS]
        if missing:
            raise ContractError(
                f"{source} lacks contract metadata {missing}; it was not written by `pls export` "
                "(or by an older version): re-export it from its checkpoint"
            )
        try:
            values = {f.name: json.loads(metadata[f.name]) for f in fields(cls) if f.name in metadata}
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
        from pls_core.tasks import TaskSpecError, register_from_text

        try:
            register_from_text(contract.task_spec, f"{source} (contract task_spec)")
        except TaskSpecError as exc:
            raise ContractError(f"{exc}; re-export the model from a checkpoint of a valid dataset") from None
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
        """Refuse an observation the policy must not act on; ContractError names the problem and the fix.

        The one check every consumer of observations calls (PolicyRunner.act, the ROS policy node): the
        shape must be [obs_dim] or [num_envs, obs_dim], every value finite and within
        +-MAX_OBSERVATION_MAGNITUDE. A sensor fault must become a refusal, never an action.
        """
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
        if np.any(np.abs(obs) > MAX_OBSERVATION_MAGNITUDE):
            bad = np.argwhere(np.abs(obs) > MAX_OBSERVATION_MAGNITUDE).tolist()
            raise ContractError(
                f"observation has values beyond +-{MAX_OBSERVATION_MAGNITUDE:g} at {bad} (largest "
                f"{float(np.max(np.abs(obs))):.3g}); a unit or sensor fault upstream: fix the source of the "
                "observation, the policy will not act on it"
            )

    def check_task(self, source: str = "model") -> None:
        """Refuse a contract whose observation/action sizes differ from its task's environment.

        Only tasks pls knows (pls_core.tasks) are checked; a model for a robot task of its own passes.
        """
        from pls_core.dataset import task_dims

        dims = task_dims(self.task_id)
        if dims is None:
            return
        if (self.obs_dim, self.act_dim) != dims:
            raise ContractError(
                f"{source} expects observations of {self.obs_dim} and actions of {self.act_dim} values, but "
                f"{self.task_id} has {dims[0]} and {dims[1]}: it was trained on a dataset of another task; "
                f"train it on a {self.task_id} dataset (`pls collect --task {self.task_id}`) and re-export"
            )


def probe_inputs(contract: ModelContract) -> dict[str, np.ndarray]:
    """Inputs a model must answer with finite actions: deterministic windows built from its contract.

    The dataset's mean observation and +-3 standard deviations, targets across the dataset's return
    ranges, a window with one real step and a full one, timesteps from 0 to beyond max_timestep.
    """
    k, obs_dim, act_dim = contract.context_len, contract.obs_dim, contract.act_dim
    mean = np.asarray(contract.obs_mean, dtype=np.float32)
    std = np.asarray(contract.obs_std, dtype=np.float32)
    stats = contract.dataset_stats or {}
    rewards = (float(stats.get("reward_return_min", 0.0)), float(stats.get("reward_return_max", 1000.0)))
    costs = (float(stats.get("cost_return_min", 0.0)), float(stats.get("cost_return_max", 100.0)))
    states, rtg, ctg, steps, padding = [], [], [], [], []
    for shift, reward, cost, first, valid in (
        (0.0, rewards[1], costs[0], 0, 1),
        (3.0, rewards[0], costs[1], 0, k),
        (-3.0, rewards[1], costs[1], contract.max_timestep, k),
    ):
        pad = np.arange(k) < k - valid
        states.append(np.where(pad[:, None], 0.0, mean + shift * std))
        rtg.append(np.where(pad, 0.0, reward))
        ctg.append(np.where(pad, 0.0, cost))
        steps.append(np.where(pad, 0, first + np.arange(k)))
        padding.append(pad)
    n = len(states)
    return {
        "states": np.asarray(states, dtype=np.float32).reshape(n, k, obs_dim),
        "actions": np.zeros((n, k, act_dim), dtype=np.float32),
        "returns_to_go": np.asarray(rtg, dtype=np.float32),
        "costs_to_go": np.asarray(ctg, dtype=np.float32),
        "timesteps": np.asarray(steps, dtype=np.int64),
        "padding_mask": np.asarray(padding, dtype=bool),
    }


def check_probe_actions(session, contract: ModelContract, source: str, fix: str) -> None:
    """Run `session` (an onnxruntime session of the model) on probe_inputs; ContractError on non-finite
    actions. `fix` says what to do about it (re-export, retrain)."""
    actions = np.asarray(session.run(["action"], probe_inputs(contract))[0])
    if not np.all(np.isfinite(actions)):
        raise ContractError(
            f"{source} returns NaN/inf actions on its own contract's probe inputs: its weights are damaged "
            f"or diverged; {fix}"
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
        self.contract.check_task(str(model_path))
        check_probe_actions(self._session, self.contract, str(model_path),
                            "re-export it from its checkpoint with `pls export` (retrain if that fails too)")
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
