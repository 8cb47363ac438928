"""`pls evaluate`: actual vs target returns of an exported policy over a grid of targets z = (R, G)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import check_writable_folder, require


def _floats(text: str, option: str) -> list[float]:
    """A comma-separated list of finite numbers, at least one; UserError naming the option otherwise."""
    example = f"e.g. {option} 0,10,20"
    try:
        values = [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        values = None
    require(values is not None, f"{option} {text!r}: expected numbers separated by commas, {example}")
    require(bool(values), f"{option} is empty: give at least one target, {example}")
    require(all(math.isfinite(v) for v in values),
            f"{option} {text!r}: targets must be finite numbers, {example}")
    return values


def evaluate(
    model: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Exported .onnx policy.")],
    rewards: Annotated[str, typer.Option(help="Target reward returns R, e.g. 2000,2500,3000.")],
    costs: Annotated[str, typer.Option(help="Target cost returns G, e.g. 0,10,20,40,80.")],
    dataset: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Dataset for the reward range (default: the model's contract)."
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(help="Episodes per target.")] = 20,
    threshold: Annotated[float, typer.Option(help="Cost threshold b of the normalised cost.")] = 20.0,
    seed: Annotated[int, typer.Option()] = 0,
    num_envs: Annotated[int, typer.Option(help="Episodes run in lockstep, one ORT call per step.")] = 32,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: eval_<model> next to it).")
    ] = None,
    seed_box: Annotated[bool, typer.Option(help="Also run the corners of the seed box Z0 that PLS starts "
                                                 "from for this model and --threshold, and say whether "
                                                 "their mean cost stays within b.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run the policy at every target and report actual returns and DSRL-normalised scores."""
    from rich.console import Console

    from pls_core.evaluate import (
        cost_following,
        describe_following,
        describe_seed_box,
        evaluate_grid,
        rich_table,
        seed_box_check,
        seed_box_targets,
        write_report,
    )
    from pls_core.runtime import ModelContract

    reward_targets, cost_targets = _floats(rewards, "--rewards"), _floats(costs, "--costs")
    require(episodes >= 1, f"--episodes {episodes}: run at least 1 episode per target")
    require(num_envs >= 1, f"--num-envs {num_envs}: must be at least 1")
    require(math.isfinite(threshold) and threshold > 0,
            f"--threshold {threshold:g}: must be a positive number")
    report_dir = check_writable_folder(out or model.parent / f"eval_{model.stem}", "--out")
    console = Console()
    reward_range, provenance = None, {"model": str(model), "seed": seed, "episodes_per_target": episodes}
    contract = ModelContract.from_onnx(model)
    if dataset is not None:
        from pls_core.dataset import load_dataset

        returns, _, _ = load_dataset(dataset, contract.obs_dim, contract.act_dim).episode_returns()
        reward_range = (float(returns.min()), float(returns.max()))
        provenance["dataset"] = str(dataset)
    summaries, results = evaluate_grid(
        model,
        reward_targets,
        cost_targets,
        episodes,
        threshold,
        reward_range=reward_range,
        seed=seed,
        num_envs=num_envs,
        progress=progress,
    )
    check = None
    if seed_box:
        corners = seed_box_targets(contract, threshold)  # {R_lo, R_hi} x {G_lo, G_hi}
        box_summaries, box_results = evaluate_grid(
            model, sorted({r for r, _ in corners}), sorted({g for _, g in corners}), episodes, threshold,
            reward_range=reward_range, seed=seed, num_envs=num_envs)
        check = seed_box_check(box_results, corners, threshold)
        console.print(rich_table(box_summaries, "the seed box's corners"))
    title = f"{model.name}: actual vs target returns (b = {threshold:g})"
    console.print(rich_table(summaries, title))
    for verdict in cost_following(summaries):
        console.print(describe_following(verdict), highlight=False)
    if check:
        console.print(describe_seed_box(check), highlight=False)
    report = write_report(report_dir, summaries, results, threshold, title, provenance, seed_box=check)
    typer.echo("report: " + ", ".join(str(p) for p in report.values()))


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
