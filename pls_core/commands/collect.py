"""`pls collect`: generate an offline dataset for one task from saved (or freshly trained) behaviour
policies."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import signal
from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import UserError, check_task, check_writable_file, require
from pls_core.tasks import DEFAULT_TASK

Opt = typer.Option


def _command_line(params: dict) -> str:
    """The invocation as a full `pls collect` command (every option spelled out), for the file's attrs."""
    words = ["pls", "collect"]
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


def _exit_on_sigterm(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def _check_options(task: str, out: Path, counts: dict[str, int | None], train_scale: float,
                   behaviour: str, min_throttle: float | None, max_action_noise: float | None) -> None:
    """Refuse bad options before any behaviour training or rollout starts (UserError, exit 2)."""
    from pls_core.collect.recipes import get_recipe

    check_task(task, simulated=True)
    try:
        get_recipe(task)
    except KeyError as exc:
        raise UserError(f"--task {task}: {exc.args[0]}") from None
    from pls_core.collect.pipeline import resolve_behaviour

    try:
        resolve_behaviour(task, behaviour)
    except ValueError as exc:
        raise UserError(f"--behaviour {behaviour}: {exc}") from None
    for option, value in counts.items():
        hint = " (leave --episodes out for the task's default)" if option == "--episodes" else ""
        require(value is None or value >= 1, f"{option} {value}: must be at least 1{hint}")
    require(math.isfinite(train_scale) and train_scale > 0, f"--train-scale {train_scale:g}: must be > 0")
    require(min_throttle is None or (math.isfinite(min_throttle) and 0 < min_throttle <= 1),
            f"--min-throttle {min_throttle}: must be in (0, 1] (1 runs every episode at full strength)")
    require(max_action_noise is None or (math.isfinite(max_action_noise) and 0 <= max_action_noise <= 1),
            f"--max-action-noise {max_action_noise}: must be in [0, 1] (0 adds no noise)")
    check_writable_file(out, "--out")


def collect(
    ctx: typer.Context,
    out: Annotated[Path, Opt(help="HDF5 file to write (DSRL layout).")],
    task: Annotated[str, Opt(help="Safety-Gymnasium task id.")] = DEFAULT_TASK,
    seed: Annotated[int, Opt(help="Seeds behaviour training, episode plans and the grid filter.")] = 0,
    episodes: Annotated[int | None, Opt(help="Raw episodes before grid filtering.")] = None,
    workers: Annotated[int, Opt(help="CPUs for training and rollouts: 1 runs in this process, more run Ray "
                                     "tasks on an embedded local Ray, 0 all cores.")] = 2,
    address: Annotated[str | None, Opt(help="Run the trainings and rollouts on the Ray cluster at this "
                                            "address (host:port, or auto); its workers must find the "
                                            "behaviour folder at the same path.")] = None,
    behaviour: Annotated[str, Opt(help="Behaviour recipe: budget (one budget-conditioned PPO-Lagrangian "
                                        "policy), sac (two fixed-penalty SAC policies mixed per segment, "
                                        "the recipe of the models shipped before it), sac-budget (the same "
                                        "pair, the quicker one until the episode's budget is spent), "
                                        "sac-pace (the same pair blended to spend the budget at an "
                                        "even rate), or "
                                        "auto (budget where the task has one).")] = "auto",
    retrain: Annotated[bool, Opt(help="Train behaviour policies even if saved ones exist.")] = False,
    behaviour_dir: Annotated[Path | None, Opt(help="Saved behaviour policies' root.")] = None,
    episode_len: Annotated[int | None, Opt(help="Cut episodes at this many steps.")] = None,
    cost_bins: Annotated[int | None, Opt(help="Grid filter cells along cost (0..task max cost) "
                                              "[default: the task's recipe's, 50].")] = None,
    reward_bins: Annotated[int | None, Opt(help="Grid filter cells along reward [default: the recipe's, 50].")
                           ] = None,
    per_cell: Annotated[int | None, Opt(help="Episodes kept per grid cell [default: the recipe's: 6 for the "
                                             "velocity tasks, 2 otherwise].")] = None,
    drop_falls: Annotated[bool | None, Opt(help="Keep only episodes that ran to their time limit [default: "
                                                "the recipe's: yes for the velocity tasks].")] = None,
    min_reward: Annotated[float | None, Opt(help="Drop episodes earning less (a behaviour stuck in a crawl "
                                                 "all episode long) [default: keep them].")] = None,
    min_throttle: Annotated[float | None, Opt(help="Lowest action scale of the two thirds of episodes that "
                                                   "are throttled (1: none is) [default: the recipe's].")
                            ] = None,
    max_action_noise: Annotated[float | None, Opt(help="Largest action noise of the half of episodes that "
                                                       "are perturbed (0: none is) [default: the recipe's].")
                                ] = None,
    perturb_steps: Annotated[int | None, Opt(help="Throttle and noise act only on each episode's first "
                                                  "this many steps, then the behaviour runs unperturbed "
                                                  "[default: the whole episode].")] = None,
    throttle_steps: Annotated[int | None, Opt(help="The throttle acts only on each episode's first this "
                                                   "many steps (a slowed start to recover from), the noise "
                                                   "on all; with --label-intended the labels are then the "
                                                   "behaviour's unthrottled actions.")] = None,
    label_intended: Annotated[bool, Opt(help="Record the action the behaviour meant, not the noised one the "
                                             "env executed (DART): noisy states, clean labels.")] = False,
    train_scale: Annotated[float, Opt(help="Scale the behaviour training budget (smoke tests).")] = 1.0,
    progress: Annotated[bool, Opt(help="Show progress bars.")] = True,
) -> None:
    """Behaviour policies of graded safety -> perturbed rollouts -> (cost, reward) grid filter -> HDF5."""
    workers = workers or os.cpu_count() or 1
    counts = {"--episodes": episodes, "--workers": workers, "--episode-len": episode_len,
              "--cost-bins": cost_bins, "--reward-bins": reward_bins, "--per-cell": per_cell,
              "--perturb-steps": perturb_steps, "--throttle-steps": throttle_steps}
    _check_options(task, out, counts, train_scale, behaviour, min_throttle, max_action_noise)
    require(perturb_steps is None or throttle_steps is None,
            "--perturb-steps and --throttle-steps exclude each other: the first ends throttle and noise "
            "together, the second ends the throttle alone; give one")
    require(min_reward is None or math.isfinite(min_reward), f"--min-reward {min_reward}: must be a number")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # A kill (timeout, scheduler) unwinds like Ctrl-C, so the worker pools stop with us instead of
    # training on as orphans that a rerun would race for the same checkpoint files.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    import logging

    from pls_core.collect.pipeline import DEFAULT_BEHAVIOUR_ROOT, collect_dataset, default_grid
    from pls_core.dataset import dataset_summary

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    grid = default_grid(task, behaviour)
    overrides = {"cost_bins": cost_bins, "reward_bins": reward_bins, "per_cell": per_cell,
                 "drop_falls": drop_falls, "min_reward": min_reward}
    grid = dataclasses.replace(grid, **{k: v for k, v in overrides.items() if v is not None})
    ds = collect_dataset(
        task, out, seed=seed, episodes=episodes, workers=workers, address=address, retrain=retrain,
        behaviour_root=behaviour_dir or DEFAULT_BEHAVIOUR_ROOT,
        grid=grid, episode_len=episode_len, timestep_scale=train_scale, behaviour=behaviour,
        min_throttle=min_throttle, max_action_noise=max_action_noise, perturb_steps=perturb_steps,
        throttle_steps=throttle_steps, label_intended=label_intended, progress=progress,
        command=_command_line({**{k: v for k, v in ctx.params.items() if k != "address"},
                               **dataclasses.asdict(grid)}),
    )
    report = {**dataset_summary(ds), "timings_s": ds.attrs["timings"], "out": str(out)}
    typer.echo(json.dumps(report, indent=2))


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
