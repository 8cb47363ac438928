"""`pls dataset info`: what an offline dataset holds, before anyone trains on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pls_core.commands.common import check_writable_file

dataset_app = typer.Typer(no_args_is_help=True, help="Inspect offline datasets (DSRL HDF5 layout).")


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


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
