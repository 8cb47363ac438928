"""`pls evaluate`: actual vs target returns of an exported policy over a grid of targets z = (R, G)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise typer.BadParameter(f"expected numbers separated by commas, got {text!r}") from None


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
) -> None:
    """Run the policy at every target and report actual returns and DSRL-normalised scores."""
    from rich.console import Console

    from pls_core.evaluate import evaluate_grid, rich_table, write_report

    console = Console()
    reward_range, provenance = None, {"model": str(model), "seed": seed, "episodes_per_target": episodes}
    if dataset is not None:
        from pls_core.dataset import load_dataset

        returns, _, _ = load_dataset(dataset).episode_returns()
        reward_range = (float(returns.min()), float(returns.max()))
        provenance["dataset"] = str(dataset)
    summaries, results = evaluate_grid(
        model,
        _floats(rewards),
        _floats(costs),
        episodes,
        threshold,
        reward_range=reward_range,
        seed=seed,
        num_envs=num_envs,
    )
    title = f"{model.name}: actual vs target returns (b = {threshold:g})"
    console.print(rich_table(summaries, title))
    report = write_report(
        out or model.parent / f"eval_{model.stem}", summaries, results, threshold, title, provenance
    )
    typer.echo("report: " + ", ".join(str(p) for p in report.values()))


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
