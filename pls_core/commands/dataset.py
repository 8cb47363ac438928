"""`pls dataset info`: what an offline dataset holds, before anyone trains on it; `pls dataset from-bag`:
recorded episodes (pls_core.recording) -> a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import check_writable_file

dataset_app = typer.Typer(no_args_is_help=True,
                          help="Inspect offline datasets (DSRL HDF5 layout); build one from recordings.")


@dataset_app.command("info")
def info(
    file: Annotated[Path, typer.Argument(help="HDF5 dataset (ours or a DSRL file).")],
    plot: Annotated[Path | None, typer.Option(help="Write a (cost, reward) scatter PNG here.")] = None,
) -> None:
    """Episodes, reward and cost return ranges, dims and content hash, as JSON.

    The file is validated first: shapes, finite values, non-negative costs and its task's sizes.
    """
    from pls_core.dataset import dataset_summary, load_dataset, plot_cost_reward

    if plot is not None:
        check_writable_file(plot, "--plot")
    ds = load_dataset(file)  # DatasetError: one line, exit 2 (commands.common)
    typer.echo(json.dumps(dataset_summary(ds), indent=2))
    if plot is not None:
        typer.echo(f"scatter: {plot_cost_reward(ds, plot)}")


@dataset_app.command("filter")
def filter_(
    file: Annotated[Path, typer.Argument(help="HDF5 dataset to thin (ours or a DSRL file).")],
    out: Annotated[Path, typer.Option(help="HDF5 dataset to write.")],
    per_cell: Annotated[int, typer.Option(help="Episodes kept per grid cell.")],
    cost_bins: Annotated[int, typer.Option(help="Grid cells along cost (0..max cost).")] = 50,
    reward_bins: Annotated[int, typer.Option(help="Grid cells along reward.")] = 50,
    max_cost: Annotated[float | None, typer.Option(
        help="Drop episodes costing more (default: the task's dataset maximum).")] = None,
    seed: Annotated[int, typer.Option(help="Seeds which episodes of a full cell are kept.")] = 0,
    drop_falls: Annotated[bool, typer.Option(
        help="Keep only episodes that ran to their time limit.")] = False,
    min_reward: Annotated[float | None, typer.Option(
        help="Drop episodes earning less (a behaviour stuck in a crawl all episode long).")] = None,
) -> None:
    """Thin a dataset's episodes on a (cost, reward) grid, the rule `pls collect` applies to its rollouts.

    Collect once with a generous --per-cell, then thin here as often as needed without rolling out again.
    """
    import math

    from pls_core.collect.grid_filter import GridSpec, filter_dataset
    from pls_core.commands.common import UserError, require
    from pls_core.dataset import dataset_summary, load_dataset, save_dataset
    from pls_core.tasks import get_task

    counts = {"--per-cell": per_cell, "--cost-bins": cost_bins, "--reward-bins": reward_bins}
    for option, value in counts.items():
        require(value >= 1, f"{option} {value}: must be at least 1")
    require(max_cost is None or (math.isfinite(max_cost) and max_cost > 0), "--max-cost must be > 0")
    require(min_reward is None or math.isfinite(min_reward), f"--min-reward {min_reward}: must be a number")
    check_writable_file(out, "--out")
    ds = load_dataset(file)
    if max_cost is None:
        try:
            max_cost = get_task(ds.attrs["task_id"]).max_cost
        except KeyError:
            raise UserError(f"{file}: its task is unknown here; give --max-cost") from None
    try:
        grid = GridSpec(cost_bins, reward_bins, per_cell, drop_falls, min_reward)
        thinned = filter_dataset(ds, max_cost, grid, seed)
    except ValueError as exc:
        raise UserError(f"{file}: {exc}; raise --max-cost"
                        + (" or lower --min-reward" if min_reward is not None else "")) from None
    save_dataset(out, thinned)
    typer.echo(json.dumps({**dataset_summary(thinned), "out": str(out)}, indent=2))


@dataset_app.command("from-bag")
def from_bag(
    bags: Annotated[list[Path], typer.Argument(help="Bag folder(s) recorded with `pls robot --record DIR` "
                                                    "(rosbag2 MCAP), or .mcap files.")],
    task: Annotated[str, typer.Option(help="Task id, or the robot's task description YAML.")],
    out: Annotated[Path, typer.Option(help="HDF5 dataset to write (DSRL layout).")],
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
    clock_jump_periods: Annotated[float, typer.Option(
        help="Report a gap between consecutive observations longer than this many control periods.")] = 10.0,
) -> None:
    """Recorded episodes -> a dataset, with every fault in the recording counted and reported.

    Each episode is kept, repaired (a duplicate merged) or excluded with its reason (a dropped message,
    a missing EpisodeResult, an episode cut short, a wrong observation length, ...); see docs/ros.md.
    """
    from pls_core.bag import BagError
    from pls_core.commands.common import UserError, require
    from pls_core.dataset import save_dataset
    from pls_core.recording import RecordingError, convert, report_lines
    from pls_core.tasks import TaskSpecError, resolve_task

    require(clock_jump_periods > 0, "--clock-jump-periods must be > 0, e.g. 10")
    check_writable_file(out, "--out")
    if report is not None:
        check_writable_file(report, "--report")
    try:
        spec = resolve_task(task)
    except (KeyError, TaskSpecError) as exc:
        raise UserError(f"--task {task}: {exc.args[0]}") from None
    try:
        result = convert(bags, spec, clock_jump_periods)
    except (BagError, RecordingError) as exc:
        raise UserError(str(exc)) from None
    for line in report_lines(result.report):
        typer.echo(line)
    save_dataset(out, result.dataset)
    if report is not None:
        report.write_text(json.dumps(result.report, indent=2) + "\n")
        typer.echo(f"report: {report}")
    typer.echo(f"dataset: {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
