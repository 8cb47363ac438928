"""Offline datasets in DSRL's HDF5 layout: read, validate, write, summarise.

Files we write and real DSRL files load the same way, so a CDT trained here can also be trained on DSRL
data. Validation runs on every load and save: a broken file fails here with the fix in the message, not as
a shape error deep inside training.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DSRL_KEYS: tuple[str, ...] = (
    "observations",
    "next_observations",
    "actions",
    "rewards",
    "costs",
    "terminals",
    "timeouts",
)
_FLAG_KEYS = ("terminals", "timeouts")
_VECTOR_KEYS = ("observations", "next_observations", "actions")
_REGENERATE = "regenerate it with `pls collect --task TASK --out FILE`"


class DatasetError(ValueError):
    """A dataset file or array set that cannot be used; the message says what is wrong and how to fix it."""


def task_dims(task_id: str | None) -> tuple[int, int] | None:
    """(observation size, action size) of a task pls knows; None for any other (a robot's own task).

    The environment is the contract: a dataset or model whose sizes differ belongs to another task.
    """
    from pls_core.tasks import TASKS

    return TASKS[task_id].sizes if task_id in TASKS else None


@dataclass
class OfflineDataset:
    """One task's transitions, concatenated episode after episode (DSRL's layout).

    Float arrays are float32; `terminals` and `timeouts` are bool. An episode ends where either is set.
    """

    observations: np.ndarray
    next_observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    costs: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in DSRL_KEYS:
            value = np.asarray(getattr(self, key))
            if key in _FLAG_KEYS:
                if value.dtype != bool and not np.isfinite(value).all():
                    raise DatasetError(f"`{key}` holds NaN/inf values; {_REGENERATE}")
                value = value.astype(bool)
            setattr(self, key, value.astype(np.float32, copy=False) if key not in _FLAG_KEYS else value)

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_transitions(self) -> int:
        return int(self.rewards.shape[0])

    def episode_slices(self) -> list[slice]:
        """One slice per finished episode; a trailing episode with no end flag is dropped with a warning."""
        ends = np.flatnonzero(self.terminals | self.timeouts)
        starts = np.concatenate([[0], ends[:-1] + 1]) if ends.size else np.array([], dtype=int)
        last_end = int(ends[-1]) + 1 if ends.size else 0
        if last_end < self.num_transitions:
            warnings.warn(
                f"dropping {self.num_transitions - last_end} transitions after the last episode end "
                "(an unfinished episode)",
                stacklevel=2,
            )
        return [slice(int(s), int(e) + 1) for s, e in zip(starts, ends, strict=True)]

    def episode_returns(self, slices: list[slice] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reward returns, cost returns and lengths, one entry per finished episode."""
        slices = self.episode_slices() if slices is None else slices
        rewards = np.array([self.rewards[s].sum(dtype=np.float64) for s in slices])
        costs = np.array([self.costs[s].sum(dtype=np.float64) for s in slices])
        lengths = np.array([s.stop - s.start for s in slices], dtype=np.int64)
        return rewards, costs, lengths

    def episode_terminated(self, slices: list[slice] | None = None) -> np.ndarray:
        """Per finished episode: did it end by termination (a fall), not by a time limit?

        Pass the `episode_slices()` already in hand to skip splitting (and warning) a second time.
        """
        slices = self.episode_slices() if slices is None else slices
        return np.array([bool(self.terminals[s.stop - 1]) for s in slices], dtype=bool)

    @property
    def sha256(self) -> str:
        """Hash of the array contents only (not attrs or compression), so re-saving keeps it."""
        digest = hashlib.sha256()
        for key in DSRL_KEYS:
            array = np.ascontiguousarray(getattr(self, key))
            digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()


def validate(ds: OfflineDataset, obs_dim: int | None = None, act_dim: int | None = None) -> None:
    """Raise DatasetError unless `ds` has consistent shapes, finite values, non-negative costs, at least one
    episode end, and the sizes of its task (attrs["task_id"]) and of `obs_dim` / `act_dim` when given."""
    for key in _VECTOR_KEYS:
        array = getattr(ds, key)
        if array.ndim != 2:
            raise DatasetError(f"`{key}` has shape {array.shape}, expected (N, dim); {_REGENERATE}")
    for key in DSRL_KEYS:
        if key not in _VECTOR_KEYS and getattr(ds, key).ndim != 1:
            raise DatasetError(f"`{key}` has shape {getattr(ds, key).shape}, expected (N,); {_REGENERATE}")
    lengths = {key: getattr(ds, key).shape[0] for key in DSRL_KEYS}
    if len(set(lengths.values())) != 1:
        listing = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise DatasetError(
            f"arrays have mismatched lengths ({listing}); every key needs one row per transition. "
            f"The file was truncated or assembled wrongly: {_REGENERATE}"
        )
    if lengths["rewards"] == 0:
        raise DatasetError(f"dataset holds no transitions; {_REGENERATE}")
    if ds.next_observations.shape != ds.observations.shape:
        raise DatasetError(
            f"`next_observations` has shape {ds.next_observations.shape} but `observations` has "
            f"{ds.observations.shape}; they must match. {_REGENERATE}"
        )
    for key in DSRL_KEYS:
        array = getattr(ds, key)
        bad = int(array.size - np.count_nonzero(np.isfinite(array))) if array.dtype != bool else 0
        if bad:
            raise DatasetError(
                f"`{key}` holds {bad} NaN/inf values; drop the affected episodes or {_REGENERATE}"
            )
    negative = int(np.count_nonzero(ds.costs < 0))
    if negative:
        raise DatasetError(
            f"`costs` holds {negative} negative values (smallest {float(ds.costs.min()):g}); a cost is a "
            f"non-negative penalty per step, so the file has the wrong sign or field: {_REGENERATE}"
        )
    if not (ds.terminals | ds.timeouts).any():
        raise DatasetError(
            "no episode ends: `terminals` and `timeouts` are all zero, so episodes cannot be split. Set "
            f"timeouts=1 on each episode's last step (time-limit ends) or {_REGENERATE}"
        )
    for name, expected, actual in (("observation", obs_dim, ds.obs_dim), ("action", act_dim, ds.act_dim)):
        if expected is not None and actual != expected:
            raise DatasetError(
                f"{name} dim is {actual} but the environment expects {expected}: the file belongs to another "
                f"task; use that task's dataset or {_REGENERATE}"
            )
    validate_task(ds)


def validate_task(ds: OfflineDataset) -> None:
    """Raise DatasetError when the arrays do not fit the task named in `ds.attrs["task_id"]`.

    Every transition's observation and action must have the task environment's sizes; a file without a
    task id (a DSRL download) or for a task pls does not know is checked by the caller's dims only.
    """
    task_id = ds.attrs.get("task_id")
    dims = task_dims(task_id) if isinstance(task_id, str) else None
    if dims is None:
        return
    for name, actual, expected in (("observation", ds.obs_dim, dims[0]), ("action", ds.act_dim, dims[1])):
        if actual != expected:
            raise DatasetError(
                f"all {ds.num_transitions} transitions have {name}s of {actual} values, but {task_id} has "
                f"{expected}: the file's arrays belong to another task or were cut; use a {task_id} dataset, "
                f"e.g. regenerate it with `pls collect --task {task_id} --out FILE`"
            )


def _plain(value):
    """HDF5 attrs come back as numpy scalars/bytes; keep attrs JSON-friendly."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def load_dataset(path: str | Path, obs_dim: int | None = None, act_dim: int | None = None) -> OfflineDataset:
    """Read one of our files or a real DSRL file (extra keys ignored) and validate it.

    Pass `obs_dim` / `act_dim` to also check that the data fits the environment it will be used with.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist; {_REGENERATE}")
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in DSRL_KEYS if key not in f]
            if missing:
                raise DatasetError(
                    f"{path} lacks the DSRL keys {missing} (it has {sorted(f.keys())}); a dataset needs "
                    f"all of {list(DSRL_KEYS)}: {_REGENERATE}"
                )
            arrays = {key: f[key][()] for key in DSRL_KEYS}
            attrs = {key: _plain(value) for key, value in f.attrs.items()}
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file ({exc}); {_REGENERATE}") from exc
    _register_task_of(attrs, path)
    ds = OfflineDataset(**arrays, attrs=attrs)
    validate(ds, obs_dim, act_dim)
    return ds


def _register_task_of(attrs: dict, path: Path) -> None:
    """A dataset of a robot's own task carries its description (attrs["task_spec"]): make it known."""
    from pls_core.tasks import TaskSpecError, register_from_text

    try:
        register_from_text(attrs.get("task_spec"), f"{path} (attrs task_spec)")
    except TaskSpecError as exc:
        raise DatasetError(f"{exc}; rebuild the dataset with a valid task description") from None


def save_dataset(path: str | Path, ds: OfflineDataset) -> None:
    """Validate, then write DSRL's seven float32 arrays gzip-compressed, with `ds.attrs` as file attrs."""
    import h5py

    from pls_core import __version__

    validate(ds)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key in DSRL_KEYS:
            f.create_dataset(key, data=getattr(ds, key).astype(np.float32), compression="gzip")
        f.attrs.update({"pls_version": __version__, **{k: v for k, v in ds.attrs.items() if v is not None}})


def dataset_summary(ds: OfflineDataset) -> dict:
    """The numbers a person checks first: size, return ranges, dims, identity."""
    rewards, costs, lengths = ds.episode_returns()
    summary = {
        "task_id": ds.attrs.get("task_id"),
        "episodes": int(rewards.size),
        "transitions": ds.num_transitions,
        "obs_dim": ds.obs_dim,
        "act_dim": ds.act_dim,
        "sha256": ds.sha256,
    }
    for name, values in (("reward_return", rewards), ("cost_return", costs), ("episode_length", lengths)):
        summary[name] = {
            "min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
        }
    return summary


def plot_cost_reward(ds: OfflineDataset, out: str | Path) -> Path:
    """Scatter of episode (cost return, reward return): the coverage CDT conditioning relies on."""
    from pls_core.figures import pyplot, save_figure

    plt = pyplot()
    rewards, costs, _ = ds.episode_returns()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(costs, rewards, s=6, alpha=0.6)
    ax.set_xlabel("episode cost return")
    ax.set_ylabel("episode reward return")
    ax.set_title(f"{ds.attrs.get('task_id', 'dataset')}: {rewards.size} episodes")
    ax.grid(alpha=0.3)
    return save_figure(fig, out)
