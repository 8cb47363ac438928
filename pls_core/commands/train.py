"""`pls train`: offline CDT training on a dataset file (pls_core.cdt.trainer)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer


def _parse_overrides(pairs: list[str]) -> dict:
    """`--set key=value` pairs; values parsed as YAML scalars/lists (3e-4, true, [20, 40])."""
    import yaml

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set expects key=value, got {pair!r}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):
            # YAML 1.1 reads "3e-4" (no dot) as a string; a number is what was meant.
            with contextlib.suppress(ValueError):
                parsed = float(parsed)
        overrides[key.strip()] = parsed
    return overrides


def train(
    dataset: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="HDF5 dataset (DSRL layout).")],
    out: Annotated[Path, typer.Option(help="Run directory: checkpoint.pt, CSV logs, TensorBoard.")],
    preset: Annotated[
        str, typer.Option(help="paper (GPU), cpu (<45 min on 2 cores) or tiny (tests).")
    ] = "cpu",
    seed: Annotated[int, typer.Option()] = 0,
    steps: Annotated[int | None, typer.Option(help="Override the preset's number of gradient steps.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt when it exists.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:1, ...")] = "auto",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Config override key=value, repeatable.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a Constrained Decision Transformer on an offline dataset."""
    from pls_core.cdt.trainer import TrainingDiverged
    from pls_core.cdt.trainer import train as run_training

    try:
        result = run_training(
            dataset,
            out,
            preset_name=preset,
            seed=seed,
            steps=steps,
            resume=resume,
            device=device,
            overrides=_parse_overrides(overrides or []),
            progress=progress,
        )
    except (TrainingDiverged, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(
        f"trained to step {result.step} in {result.wall_time_s / 60:.1f} min of training time; "
        f"checkpoint: {result.checkpoint}"
    )
    typer.echo(f"next: pls export --checkpoint {result.checkpoint} --out {Path(out) / 'policy.onnx'}")


def register(app: typer.Typer) -> None:
    app.command()(train)
