"""What one `pls experiment` runs, and the optimizer configuration of each run derived from it.

Episode seeds (reproducibility, and common random numbers across methods and thresholds): search episode
k of run seed s is reset with seed s * SEED_STRIDE + k, the final evaluation's episode i with
s * SEED_STRIDE + FINAL_OFFSET + i, the grid sweep's episodes with SWEEP_SEED + j.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pls_core.safeopt.config import EVALUATIONS, EXPLORATION_FRACTION, METHODS  # plain Python: no torch
from pls_core.tasks import DEFAULT_TASK, TASKS, TaskSpecError, get_task, require_simulator

SEED_STRIDE = 1_000_000
FINAL_OFFSET = 500_000
SWEEP_SEED = 900_000_000
SEED_BOXES = ("auto", "dataset", "task")
DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# Methods that run one fixed policy instead of tuning a target: PS2 phase II (pls_core.shield.ps2), a policy
# trained through the shield's layer, at <ps2_models_dir>/<task>/ps2/.
POLICY_METHODS = ("ps2",)
EXPERIMENT_METHODS = (*METHODS, *POLICY_METHODS)
DEFAULT_PS2_DIR = Path(__file__).resolve().parent.parent / "shields"


class ExperimentError(ValueError):
    """Settings or files that cannot make a valid experiment; the message says what to change."""


@dataclass(frozen=True)
class SweepSettings:
    """The dense grid of targets evaluated once per task: the reference for regret and the heatmap."""

    reward_points: int = 11
    cost_points: int = 17
    episodes: int = 5  # per target


@dataclass(frozen=True)
class ExperimentSettings:
    """Defaults are the paper's protocol (pls-method.md §3, §5): varpi = 20, ~20 iterations, 5 seeds."""

    tasks: tuple[str, ...] = (DEFAULT_TASK,)
    thresholds: tuple[float, ...] = (20.0, 40.0)
    methods: tuple[str, ...] = METHODS
    seeds: int = 5  # runs 0..seeds-1 per (task, threshold, method)
    episodes_per_evaluation: int = 20  # varpi: also the number of envs stepped as one batch
    iterations: int = EVALUATIONS  # evaluations per run; every method ends in its operation choice after them
    pls_exploration_fraction: float = EXPLORATION_FRACTION  # PLS stage-1 cap = ceil(fraction * iterations).
    #   Stage 1 expands the safe set every way, low-reward corners too; stage 2 expands it where the reward
    #   is (docs/method.md, "Stage split")
    sweep: SweepSettings = SweepSettings()
    optimizer_overrides: dict = field(default_factory=dict)  # OptimizerConfig keys applied to every run
    seed_box: str = "auto"  # Z0 along R. dataset: from the dataset's low-cost episodes; task: the paper's
    #                         box (pls_core.tasks); auto: dataset when <datasets_dir>/<task>.hdf5 exists,
    #                         else the box the model's contract records (if any), else the task's
    models_dir: Path = DEFAULT_MODELS_DIR  # <models_dir>/<task>/policy.onnx
    datasets_dir: Path | None = None  # <datasets_dir>/<task>.hdf5 if present, else the model's dataset stats
    shield: bool = False  # the per-step shield (pls_core.shield) between the CDT's action and env.step
    fleet: int = 1  # robots tuned together by one optimizer (safeopt/fleet.py); iterations are then rounds
    ps2_models_dir: Path = DEFAULT_PS2_DIR  # method ps2: <ps2_models_dir>/<task>/ps2/ (checkpoint, manifest)

    def __post_init__(self) -> None:
        for task in self.tasks:
            try:
                spec = get_task(task)
            except KeyError:
                known = ", ".join(sorted(t for t, s in TASKS.items() if s.simulated))
                raise ExperimentError(f"unknown task {task!r}: an experiment runs tasks pls simulates: "
                                      f"{known}") from None
            try:
                require_simulator(spec)
            except TaskSpecError as exc:
                raise ExperimentError(f"{task}: {exc}; an experiment needs a simulator") from None
        unknown = [m for m in self.methods if m not in EXPERIMENT_METHODS]
        if unknown:
            raise ExperimentError(f"unknown method(s) {unknown}; choose from {', '.join(EXPERIMENT_METHODS)}")
        if not self.tasks or not self.thresholds or not self.methods:
            raise ExperimentError("tasks, thresholds and methods must each name at least one value")
        if any(not b > 0 for b in self.thresholds):
            raise ExperimentError(f"thresholds must be > 0, got {list(self.thresholds)}")
        for name in ("seeds", "episodes_per_evaluation", "iterations", "fleet"):
            if getattr(self, name) < 1:
                raise ExperimentError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations * self.episodes_per_evaluation * self.fleet >= FINAL_OFFSET:
            raise ExperimentError(f"iterations x episodes_per_evaluation (x fleet) must stay below "
                                  f"{FINAL_OFFSET} (episode seed blocks would overlap)")
        if self.seed_box not in SEED_BOXES:
            raise ExperimentError(f"seed_box must be one of {', '.join(SEED_BOXES)}, got {self.seed_box!r}")
        if not 0.0 < self.pls_exploration_fraction <= 1.0:
            raise ExperimentError("pls_exploration_fraction must be in (0, 1]")
        if self.shield or "ps2" in self.methods:
            from pls_core.shield.safe_set import VELOCITY_TASKS

            other = [t for t in self.tasks if t not in VELOCITY_TASKS]
            if other:
                what = "--shield" if self.shield else "method ps2 (a shielded policy)"
                raise ExperimentError(f"{what} covers the velocity tasks only, not {', '.join(other)}; "
                                      "drop those tasks or run without it")
        if "ps2" in self.methods and self.fleet > 1:
            raise ExperimentError("method ps2 tunes no target, so it has no fleet; run it without --fleet")
        sweep = self.sweep
        if min(sweep.reward_points, sweep.cost_points) < 2 or sweep.episodes < 1:
            raise ExperimentError("the sweep needs >= 2 points along R and G and >= 1 episode per target")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["models_dir"] = str(self.models_dir)
        d["datasets_dir"] = None if self.datasets_dir is None else str(self.datasets_dir)
        if self.fleet == 1:  # one robot: the settings as written before fleets existed
            del d["fleet"]
        if "ps2" in self.methods:
            d["ps2_models_dir"] = str(self.ps2_models_dir)
        else:  # as written before the method existed
            del d["ps2_models_dir"]
        return d


def ps2_model_dir(settings: ExperimentSettings, task_id: str) -> Path:
    """Where method ps2 finds the task's trained policy; a clear error when it is not there."""
    folder = Path(settings.ps2_models_dir) / task_id / "ps2"
    if not (folder / "checkpoint.zip").is_file():
        raise ExperimentError(f"method ps2: no trained PS2 policy for {task_id} at {folder}; train one "
                              f"(`python -m pls_core.shield.ps2 train --task {task_id} --out runs/ps2`, then "
                              "`python -m pls_core.shield.ps2 ship --model runs/ps2`) or point "
                              "--ps2-models-dir at a folder with <task>/ps2/")
    return folder


@dataclass(frozen=True)
class TaskInputs:
    """One task's model and the dataset statistics its runs are configured and normalised with."""

    task_id: str
    model_path: Path
    model_sha256: str
    reward_range: tuple[float, float]  # min and max episode reward return in the dataset (paper's R_min/max)
    cost_max: float  # largest episode cost return in the dataset: caps the grid's G range
    statistics_source: str  # the dataset file, or "model contract"
    seed_reward_range: tuple[float, float] | None = None  # Z0 along R; None: the task's (paper) box


def task_inputs(task_id: str, settings: ExperimentSettings) -> TaskInputs:
    from pls_core.runtime import ModelContract

    model_path = Path(settings.models_dir) / task_id / "policy.onnx"
    if not model_path.is_file():
        raise ExperimentError(f"no model for {task_id} at {model_path}; train and export one (`pls train`, "
                              "`pls export`) or point --models-dir at a folder with <task>/policy.onnx")
    contract = ModelContract.from_onnx(model_path)
    if contract.task_id != task_id:
        raise ExperimentError(f"{model_path} is a model for {contract.task_id}, not {task_id}")
    dataset_path = None if settings.datasets_dir is None else Path(settings.datasets_dir) / f"{task_id}.hdf5"
    seed_range = None
    if dataset_path is not None and dataset_path.is_file():
        from pls_core.dataset import load_dataset

        dataset = load_dataset(dataset_path)
        slices = dataset.episode_slices()
        rewards, costs, _ = dataset.episode_returns(slices)
        reward_range, cost_max, source = (float(rewards.min()), float(rewards.max())), float(costs.max()), \
            str(dataset_path)
        if settings.seed_box in ("auto", "dataset"):
            from pls_core.safeopt.config import seed_reward_range_from_returns

            seed_range = seed_reward_range_from_returns(rewards, costs, get_task(task_id).seed_cost_range[1],
                                                        terminated=dataset.episode_terminated(slices))
    else:
        if settings.seed_box == "dataset":
            raise ExperimentError(f"seed_box 'dataset' needs {task_id}.hdf5 in --datasets-dir (got "
                                  f"{settings.datasets_dir}); pass the folder, or use seed_box 'task'")
        stats = contract.dataset_stats
        reward_range = (float(stats["reward_return_min"]), float(stats["reward_return_max"]))
        cost_max, source = float(stats["cost_return_max"]), "model contract"
        if settings.seed_box == "auto" and stats.get("seed_reward_range"):  # recorded by `pls train`
            seed_range = tuple(float(v) for v in stats["seed_reward_range"])
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    return TaskInputs(task_id, model_path, digest, reward_range, cost_max, source, seed_range)


def optimizer_config(inputs: TaskInputs, threshold: float, method: str, seed: int,
                     settings: ExperimentSettings):
    """The run's OptimizerConfig: the task's defaults (OptimizerConfig.for_task) on the experiment's budget.

    Stage caps add up to `iterations` for every method, so each has reached its operation choice when the
    budget is spent (PLS earlier if stage 1 ends by its zeta rule, and then operates until the end).
    """
    from pls_core.safeopt import OptimizerConfig

    explore = math.ceil(settings.pls_exploration_fraction * settings.iterations)
    budget = {"method": method, "seed": seed, "episodes_per_evaluation": settings.episodes_per_evaluation,
              "max_exploration_iterations": explore,
              "max_maximisation_iterations": settings.iterations - explore}
    return OptimizerConfig.for_task(
        inputs.task_id, threshold, dataset_reward_min=inputs.reward_range[0],
        dataset_reward_max=inputs.reward_range[1], dataset_cost_max=inputs.cost_max,
        seed_reward_range=inputs.seed_reward_range,
        **{**budget, **settings.optimizer_overrides})
