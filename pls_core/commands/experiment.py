"""`pls experiment`: the paper's comparison (PLS vs baselines) in-process, batched, resumable."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import check_writable_folder, parse_overrides, parse_value, require
from pls_core.experiment.settings import (
    DEFAULT_MODELS_DIR,
    DEFAULT_PS2_DIR,
    EXPERIMENT_METHODS,
    METHODS,
    ExperimentSettings,
    SweepSettings,
)

DEFAULTS = ExperimentSettings()
Opt = typer.Option


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _thresholds(text: str) -> tuple[float, ...]:
    """--thresholds as positive finite numbers; UserError naming the first one that is not."""
    values = []
    for item in _split(text):
        value = parse_value(item)
        require(isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
                and value > 0, f"--thresholds: {item!r} is not a positive number; give cost thresholds b "
                "separated by commas, e.g. --thresholds 20,40")
        values.append(float(value))
    require(bool(values), "--thresholds is empty; give cost thresholds b separated by commas, e.g. 20,40")
    return tuple(values)


# OptimizerConfig keys each run sets from its own options or from the task and its data; a --set of one
# would silently fight the option (or collide with it).
_STAGES = "--iterations and --pls-exploration-fraction"
_SET_PER_RUN = {
    "threshold": "--thresholds", "method": "--methods", "seed": "--seeds",
    "episodes_per_evaluation": "--episodes-per-evaluation", "max_exploration_iterations": _STAGES,
    "max_maximisation_iterations": _STAGES, "task_id": "--tasks", "dataset_reward_min": "--datasets-dir",
    "dataset_reward_max": "--datasets-dir", "dataset_cost_max": "--datasets-dir",
    "seed_reward_range": "--seed-box",
}


def _optimizer_overrides(pairs: list[str] | None) -> dict:
    overrides = parse_overrides(pairs)
    for key in overrides:
        require(key not in _SET_PER_RUN, f"--set {key}: every run sets it from {_SET_PER_RUN.get(key)}; use "
                "that option instead")
    return overrides


def experiment(
    out: Annotated[Path, Opt(help="Output folder; finished runs found there are skipped (resume).")],
    tasks: Annotated[str, Opt(help="Comma-separated task ids.")] = ",".join(DEFAULTS.tasks),
    thresholds: Annotated[str, Opt(help="Cost thresholds b, comma-separated.")] = "20,40",
    methods: Annotated[str, Opt(help=f"Comma-separated, from {', '.join(EXPERIMENT_METHODS)} (ps2: a "
                                     "policy trained through the shield's layer, pls_core.shield.ps2; "
                                     "run only when named).")] = ",".join(METHODS),
    seeds: Annotated[int, Opt(help="Runs per (task, b, method): seeds 0..N-1.")] = DEFAULTS.seeds,
    episodes_per_evaluation: Annotated[int, Opt(help="varpi: episodes per evaluation, stepped as one batch.")
                                       ] = DEFAULTS.episodes_per_evaluation,
    iterations: Annotated[int, Opt(help="Evaluations per run.")] = DEFAULTS.iterations,
    models_dir: Annotated[Path, Opt(help="Folder with <task>/policy.onnx.")] = DEFAULT_MODELS_DIR,
    datasets_dir: Annotated[
        Path | None, Opt(help="Folder with <task>.hdf5 for the reward range; else the model's dataset stats.")
    ] = None,
    seed_box: Annotated[str, Opt(help="Seed set Z0 along R: dataset (median to upper quartile of the "
                                      "returns of episodes with cost <= the box's G), task (the paper's box) "
                                      "or auto (dataset when --datasets-dir has the task).")
                        ] = DEFAULTS.seed_box,
    pls_exploration_fraction: Annotated[
        float, Opt(help="PLS stage-1 share of the iterations (cap).")] = DEFAULTS.pls_exploration_fraction,
    sweep_rewards: Annotated[int, Opt(help="Grid sweep points along R.")] = DEFAULTS.sweep.reward_points,
    sweep_costs: Annotated[int, Opt(help="Grid sweep points along G.")] = DEFAULTS.sweep.cost_points,
    sweep_episodes: Annotated[int, Opt(help="Grid sweep episodes per target.")] = DEFAULTS.sweep.episodes,
    overrides: Annotated[
        list[str] | None, Opt("--set", help="OptimizerConfig key=value for every run, repeatable.")
    ] = None,
    ps2_models_dir: Annotated[Path, Opt(help="Method ps2: folder with <task>/ps2/ (a trained PS2 policy).")
                              ] = DEFAULT_PS2_DIR,
    shield: Annotated[bool, Opt(help="Per-step shield (pls_core.shield, shipped backup) between the CDT's "
                                     "action and env.step; velocity tasks.")] = False,
    fleet: Annotated[int, Opt(help="Robots tuned together by one optimizer: each round proposes one "
                                   "verified-safe target per robot, each run for --episodes-per-evaluation "
                                   "episodes; --iterations then counts rounds.")] = DEFAULTS.fleet,
    workers: Annotated[int, Opt(help="Runs and sweeps computed side by side, one CPU each: 1 = one after "
                                     "another in this process; N > 1 = an embedded Ray with N CPUs; 0 = all "
                                     "this machine's cores (Ray if installed, else one after another).")] = 0,
    address: Annotated[str | None, Opt(help="Join this Ray cluster (e.g. 127.0.0.1:6379, or auto) instead; "
                                            "its nodes need this models folder at the same path.")] = None,
    progress: Annotated[bool, Opt(help="Show progress bars and one line per finished run.")] = True,
    report: Annotated[Path | None, Opt(help="Run nothing: regenerate this document (e.g. docs/results.md) "
                                            "from the <out>/*/results.json files.")] = None,
) -> None:
    """Run every task x threshold x method x seed, then write results.json/CSV, table.md and figures."""
    if report is not None:
        from pls_core.experiment.report import write_results_document
        from pls_core.experiment.settings import ExperimentError

        try:
            typer.echo(f"report: {write_results_document(report, out)}")
        except ExperimentError as exc:
            typer.echo(f"pls experiment: {exc}", err=True)
            raise typer.Exit(2) from None
        return
    for name, value in (("--seeds", seeds), ("--episodes-per-evaluation", episodes_per_evaluation),
                        ("--iterations", iterations), ("--fleet", fleet)):
        require(value >= 1, f"{name} {value}: must be at least 1")
    require(workers >= 0, f"--workers {workers}: must be 0 (all cores) or more")
    engine = _engine(workers, address)
    require(0.0 < pls_exploration_fraction <= 1.0,
            f"--pls-exploration-fraction {pls_exploration_fraction:g}: must be in (0, 1]")
    threshold_values = _thresholds(thresholds)
    check_writable_folder(out, "--out")
    overrides_checked = _optimizer_overrides(overrides)  # every refusal comes before torch loads
    import torch

    # The GPs hold <= 20 observations: one thread is fastest, and two experiment processes side by side
    # each spinning two OpenMP threads on a 2-core machine ran 2.5-2.8x slower (measured 2026-12-03).
    torch.set_num_threads(1)
    from pls_core.dataset import DatasetError
    from pls_core.experiment.harness import run_experiment
    from pls_core.experiment.settings import ExperimentError
    from pls_core.runtime import ContractError
    from pls_core.safeopt.errors import OptimizerConfigError

    try:
        settings = ExperimentSettings(
            tasks=tuple(_split(tasks)), thresholds=threshold_values,
            methods=tuple(_split(methods)), seeds=seeds, episodes_per_evaluation=episodes_per_evaluation,
            iterations=iterations, pls_exploration_fraction=pls_exploration_fraction,
            sweep=SweepSettings(sweep_rewards, sweep_costs, sweep_episodes),
            optimizer_overrides=overrides_checked, models_dir=models_dir,
            datasets_dir=datasets_dir, seed_box=seed_box, shield=shield, fleet=fleet,
            ps2_models_dir=ps2_models_dir)
        paths = run_experiment(settings, out, progress=progress, engine=engine)
    except (ExperimentError, OptimizerConfigError, ContractError, DatasetError) as exc:
        typer.echo(f"pls experiment: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo((out / "table.md").read_text())
    typer.echo("report: " + ", ".join(str(p) for p in paths.values()))


def _engine(workers: int, address: str | None):
    """Where the units run (pls_core.experiment.engines); refuses Ray options when Ray is missing."""
    import importlib.util
    import os

    from pls_core.experiment.engines import RayEngine, SerialEngine

    have_ray = importlib.util.find_spec("ray") is not None
    if address is not None or workers > 1:
        what = f"--address {address}" if address is not None else f"--workers {workers}"
        require(have_ray, f"{what} needs Ray, which is not installed: pip install 'ray==2.60.0' "
                          "(requirements/base.txt), or use --workers 1")
        return RayEngine(address=address, num_cpus=None if address is not None else workers)
    if workers == 0 and have_ray and (os.cpu_count() or 1) > 1:
        return RayEngine()
    return SerialEngine()


def register(app: typer.Typer) -> None:
    app.command()(experiment)
