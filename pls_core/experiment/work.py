"""An experiment's independent units of work (one grid sweep, one optimizer run) and how each is computed.

A unit holds everything it needs (model path, task, settings, fingerprint), so it can be computed in this
process or in another one (pls_core.experiment.engines): `compute(unit, rollouts)` is the one place a
sweep or a run is computed, whichever engine calls it. Results are stored by the caller, in the order
they finish; a stored result is what resume finds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pls_core.experiment.loop import RunKey, RunRecord, run_fixed_policy, run_optimizer
from pls_core.experiment.rollouts import PolicyRollouts, Rollouts
from pls_core.experiment.sweep import run_sweep, save_sweep


@dataclass(frozen=True)
class RolloutSpec:
    """What a Rollouts is made of: the same spec gives the same episodes in any process."""

    model_path: Path
    task_id: str
    num_envs: int
    shield: bool

    def make(self) -> Rollouts:
        return Rollouts(self.model_path, self.task_id, self.num_envs, self.shield)


@dataclass(frozen=True)
class SweepUnit:
    rollouts: RolloutSpec
    threshold: float
    targets: tuple[tuple[float, float], ...]
    episodes: int
    fingerprint: dict
    path: Path

    def label(self) -> str:
        return f"{self.rollouts.task_id} sweep b={self.threshold:g}"

    @property
    def size(self) -> int:  # episodes, for progress
        return len(self.targets) * self.episodes


class _Run:
    """What every run unit says of itself: its key's label, and its iterations as progress."""

    def label(self) -> str:
        return self.key.label()

    @property
    def size(self) -> int:
        return self.iterations


@dataclass(frozen=True)
class RunUnit(_Run):
    rollouts: RolloutSpec
    key: RunKey
    config: object  # OptimizerConfig
    iterations: int
    fingerprint: dict
    path: Path


@dataclass(frozen=True)
class PolicySpec:
    """A fixed shielded policy's episodes (PS2 phase II): its trained folder and task."""

    model_dir: Path
    task_id: str

    def make(self) -> PolicyRollouts:
        return PolicyRollouts(self.model_dir, self.task_id)


@dataclass(frozen=True)
class PolicyRunUnit(_Run):
    """A run of a method without targets: the same episode budget and seeds as an optimizer run."""

    rollouts: PolicySpec
    key: RunKey
    iterations: int
    episodes_per_evaluation: int
    fingerprint: dict
    path: Path


Unit = SweepUnit | RunUnit | PolicyRunUnit


def compute(unit: Unit, rollouts, on_progress: Callable[[int], None] | None = None):
    """The sweep's dict or the run's RunRecord; `on_progress(n)` after each batch (sweep: episodes) or
    iteration (run)."""
    on_iteration = None if on_progress is None else (lambda _row: on_progress(1))
    if isinstance(unit, PolicyRunUnit):
        return run_fixed_policy(rollouts, unit.key, unit.iterations, unit.episodes_per_evaluation,
                                unit.fingerprint, on_iteration=on_iteration)
    if isinstance(unit, SweepUnit):
        return run_sweep(rollouts, list(unit.targets), unit.episodes, unit.fingerprint, on_batch=on_progress)
    return run_optimizer(rollouts, unit.config, unit.key, unit.iterations, unit.fingerprint,
                         on_iteration=on_iteration)


def store(unit: Unit, result) -> None:
    """Written atomically (temporary file, then rename): a killed process leaves no half-written result."""
    if isinstance(unit, SweepUnit):
        save_sweep(unit.path, result)
    else:
        result.save(unit.path)


def outcome(unit: Unit, result) -> str:
    """One line for the log when a unit finishes."""
    if isinstance(unit, SweepUnit):
        return f"{unit.label()}: {len(unit.targets)} targets x {unit.episodes} episodes"
    record: RunRecord = result
    final = record.final
    if final.get("halted"):
        what = f"halted after {final['halted_after']} evaluations ({final['note']})"
    else:
        where = "" if final["target"] is None else \
            f"R={final['target'][0]:.0f} G={final['target'][1]:.1f} -> "
        what = f"final {where}reward {final['reward_mean']:.1f}, cost {final['cost_mean']:.1f}"
    return (f"{unit.label()}: {what}; unsafe search episodes {record.unsafe_episodes}/"
            f"{len(record.episodes)}; {record.wall_time_s:.0f} s")
